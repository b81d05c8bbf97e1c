/** Request bodies read with a hard limit: a declared or streamed body past it is refused (413). */
import { refusal } from './errors.ts';

export type LimitedBody = { ok: true; bytes: Uint8Array } | { ok: false; response: Response };

function tooLarge(limitBytes: number, what: string): Response {
  return refusal('ERR_TOO_LARGE', `${what} is limited to ${limitBytes} bytes`);
}

/** Refuse at once when Content-Length says the body is too large (before auth, before reading). */
export function declaredTooLarge(request: Request, limitBytes: number, what: string): Response | undefined {
  const declared = request.headers.get('content-length');
  return declared !== null && Number(declared) > limitBytes ? tooLarge(limitBytes, what) : undefined;
}

/** Read the body, stopping (and cancelling the stream) as soon as it passes `limitBytes`. */
export async function readLimited(request: Request, limitBytes: number, what: string): Promise<LimitedBody> {
  const early = declaredTooLarge(request, limitBytes, what);
  if (early) return { ok: false, response: early };
  if (!request.body) return { ok: true, bytes: new Uint8Array(0) };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limitBytes) {
      await reader.cancel().catch(() => {});
      return { ok: false, response: tooLarge(limitBytes, what) };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, bytes };
}
