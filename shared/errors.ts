/**
 * Typed errors with stable codes. Every failure the system reports is an ObscuraError whose `code`
 * never changes meaning; `failureClass` groups codes for exit statuses and wire errors.
 */

/** What kind of failure a code is; the CLI maps these to exit statuses, the edge/worker to HTTP. */
export type FailureClass =
  | 'malformed' // bytes could not be parsed, wrong length, unsupported version
  | 'signature' // a signature or certificate chain does not verify
  | 'validity' // outside a validity window, or revoked
  | 'mismatch' // signatures hold but a value differs from what was expected
  | 'protocol' // sealed-protocol failure: replay, reorder, truncation, wrong key
  | 'unavailable' // a part is down, unattested, or lacks a secret
  | 'usage'; // the caller asked for something that cannot be done

const CODE_CLASSES = {
  ERR_MALFORMED: 'malformed',
  ERR_UNSUPPORTED_VERSION: 'malformed',
  ERR_RESERVED_NONZERO: 'malformed',
  ERR_SIGNATURE_INVALID: 'signature',
  ERR_CHAIN_INVALID: 'signature',
  ERR_UNTRUSTED_ROOT: 'signature',
  ERR_NOT_YET_VALID: 'validity',
  ERR_EXPIRED: 'validity',
  ERR_REVOKED: 'validity',
  ERR_VALUE_MISMATCH: 'mismatch',
  ERR_POLICY_VIOLATION: 'mismatch',
  ERR_MEASUREMENT_NOT_ALLOWED: 'mismatch',
  ERR_DOWNGRADE: 'mismatch',
  ERR_OPEN_FAILED: 'protocol',
  ERR_REPLAY: 'protocol',
  ERR_TIMESTAMP_OUT_OF_WINDOW: 'protocol',
  ERR_STREAM_REORDERED: 'protocol',
  ERR_STREAM_TRUNCATED: 'protocol',
  ERR_UNKNOWN_SECRET: 'unavailable',
  ERR_SECRET_EXPIRED: 'unavailable',
  ERR_WORKER_NOT_ATTESTED: 'unavailable',
  ERR_NO_WORKER: 'unavailable',
  ERR_UPSTREAM: 'unavailable',
  ERR_SERVICE_MOVED: 'unavailable', // an attestation service that handed its state to another one
  ERR_RATE_LIMITED: 'unavailable',
  ERR_TOO_LARGE: 'malformed',
  ERR_UNAUTHORIZED: 'usage',
  ERR_PLAINTEXT_REFUSED: 'usage',
  ERR_USAGE: 'usage',
} as const satisfies Record<string, FailureClass>;

export type ErrorCode = keyof typeof CODE_CLASSES;

export class ObscuraError extends Error {
  readonly code: ErrorCode;
  override readonly name = 'ObscuraError';

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get failureClass(): FailureClass {
    return CODE_CLASSES[this.code];
  }
}

export function failureClassOf(code: ErrorCode): FailureClass {
  return CODE_CLASSES[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(CODE_CLASSES, value);
}

/** Shorthand used by parsers: fail with ERR_MALFORMED unless `condition` holds. */
export function ensure(condition: unknown, code: ErrorCode, message: string): asserts condition {
  if (!condition) throw new ObscuraError(code, message);
}
