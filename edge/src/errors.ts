import type { ErrorCode } from '../../shared/errors.ts';
import { httpStatusFor, toWireError, wireErrorBody } from '../../shared/protocol/wire-error.ts';

/**
 * Edge-only refusals that shared/errors.ts has no code for yet. Their bodies have the usual wire shape
 * ({ error: { code, message } }); a client that does not know the code still gets the HTTP status.
 */
export type EdgeRefusalCode = 'ERR_UNAUTHORIZED' | 'ERR_RATE_LIMITED' | 'ERR_TOO_LARGE';
const EDGE_REFUSAL_STATUS: Record<EdgeRefusalCode, number> = { ERR_UNAUTHORIZED: 401, ERR_RATE_LIMITED: 429, ERR_TOO_LARGE: 413 };

export function errorResponse(code: ErrorCode, message: string, extraHeaders: Record<string, string> = {}): Response {
  return Response.json(wireErrorBody(code, message), { status: httpStatusFor(code), headers: { 'cache-control': 'no-store', ...extraHeaders } });
}

export function refusal(code: EdgeRefusalCode, message: string, extraHeaders: Record<string, string> = {}, details: Record<string, unknown> = {}): Response {
  return Response.json({ error: { ...details, code, message } }, { status: EDGE_REFUSAL_STATUS[code], headers: { 'cache-control': 'no-store', ...extraHeaders } });
}

export function responseFor(e: unknown): Response {
  const { status, body } = toWireError(e);
  return Response.json(body, { status, headers: { 'cache-control': 'no-store' } });
}

/** A response with headers added (responses from fetch have immutable headers). */
export function withHeaders(res: Response, headers: Record<string, string>): Response {
  const out = new Response(res.body, res);
  for (const [k, v] of Object.entries(headers)) out.headers.set(k, v);
  return out;
}
