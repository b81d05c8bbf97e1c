import type { ErrorCode } from '../../shared/errors.ts';
import { httpStatusFor, toWireError, wireErrorBody } from '../../shared/protocol/wire-error.ts';

export function errorResponse(code: ErrorCode, message: string, extraHeaders: Record<string, string> = {}): Response {
  return Response.json(wireErrorBody(code, message), { status: httpStatusFor(code), headers: extraHeaders });
}

export function responseFor(e: unknown): Response {
  const { status, body } = toWireError(e);
  return Response.json(body, { status });
}
