/**
 * Errors on the wire: `{ "error": { "code", "message" } }` with an HTTP status. One exhaustive function
 * maps internal codes to statuses; messages say what went wrong and what to do, never internals or
 * plaintext.
 */
import { ObscuraError, failureClassOf, isErrorCode, type ErrorCode } from '../errors.ts';

export interface WireError {
  error: { code: ErrorCode; message: string };
}

export function httpStatusFor(code: ErrorCode): number {
  if (code === 'ERR_UNAUTHORIZED') return 401;
  if (code === 'ERR_TOO_LARGE') return 413;
  if (code === 'ERR_RATE_LIMITED') return 429;
  if (code === 'ERR_SERVICE_MOVED') return 410;
  switch (failureClassOf(code)) {
    case 'malformed':
      return 400;
    case 'usage':
      return code === 'ERR_PLAINTEXT_REFUSED' ? 415 : 400;
    case 'protocol':
      return code === 'ERR_REPLAY' ? 409 : 400;
    case 'signature':
    case 'validity':
    case 'mismatch':
      return 403;
    case 'unavailable':
      return code === 'ERR_UNKNOWN_SECRET' || code === 'ERR_SECRET_EXPIRED' ? 404 : 503;
  }
}

export function wireErrorBody(code: ErrorCode, message: string): WireError {
  return { error: { code, message } };
}

/** Turn any thrown value into a wire error; unknown exceptions never leak their message. */
export function toWireError(e: unknown): { status: number; body: WireError } {
  if (e instanceof ObscuraError) return { status: httpStatusFor(e.code), body: wireErrorBody(e.code, e.message) };
  return { status: 500, body: wireErrorBody('ERR_UPSTREAM', 'internal error') };
}

/** Read a wire error back into an ObscuraError (clients), tolerating anything malformed. */
export function fromWireError(status: number, body: unknown): ObscuraError {
  const err = (body as WireError | undefined)?.error;
  if (err && isErrorCode(err.code) && typeof err.message === 'string') return new ObscuraError(err.code, err.message);
  return new ObscuraError('ERR_UPSTREAM', `unexpected response (HTTP ${status})`);
}

/** The same, from a response body's bytes (JSON, or anything else). */
export function fromWireErrorBytes(status: number, bytes: Uint8Array): ObscuraError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    parsed = undefined;
  }
  return fromWireError(status, parsed);
}
