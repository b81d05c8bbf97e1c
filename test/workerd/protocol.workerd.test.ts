/**
 * The sealed-message protocol (shared/protocol) inside workerd: a request sealed with an inference
 * secret opens with it, a streamed response round-trips whatever the chunking, and tampering,
 * reordering and truncation are refused with their codes. Run by vitest.workerd.config.ts.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes, fromUtf8, randomBytes, utf8 } from '../../shared/bytes.ts';
import { type ErrorCode, ObscuraError } from '../../shared/errors.ts';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { openRequest, parseSealedRequest, sealRequest } from '../../shared/protocol/sealed-request.ts';
import { ResponseOpener, ResponseSealer, type ResponseEvent } from '../../shared/protocol/sealed-response.ts';

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

const BODY = JSON.stringify({ messages: [{ role: 'user', content: 'the canary sings in workerd' }] });

async function sealed() {
  const secretKey = await importInferenceSecret(randomBytes(32));
  const request = await sealRequest({
    secretKey,
    secretId: randomBytes(16),
    method: 'POST',
    path: '/v1/chat/completions',
    routing: { model: 'm', stream: true },
    body: utf8(BODY),
    now: Date.now(),
  });
  return { secretKey, request };
}

async function openAll(keys: { responseKey: CryptoKey; responseIvBase: Uint8Array }, bytes: Uint8Array, chunk: number): Promise<ResponseEvent[]> {
  const opener = new ResponseOpener(keys.responseKey, keys.responseIvBase);
  const events: ResponseEvent[] = [];
  for (let i = 0; i < bytes.length; i += chunk) events.push(...(await opener.push(bytes.subarray(i, i + chunk))));
  opener.finish();
  return events;
}

describe('sealed messages in workerd', () => {
  it('a sealed request opens with its secret only, and carries no plaintext', async () => {
    expect(navigator.userAgent).toBe('Cloudflare-Workers');
    const { secretKey, request } = await sealed();
    expect(fromUtf8(request.bytes.filter((b) => b >= 0x20 && b < 0x7f))).not.toContain('canary');
    const opened = await openRequest(parseSealedRequest(request.bytes), secretKey);
    expect(fromUtf8(opened.body)).toBe(BODY);
    expect(opened.header.routing).toEqual({ model: 'm', stream: true });
    expect(opened.header.path).toBe('/v1/chat/completions');
    expect(await codeOf(openRequest(parseSealedRequest(request.bytes), await importInferenceSecret(randomBytes(32))))).toBe('ERR_OPEN_FAILED');
    const parsed = parseSealedRequest(request.bytes);
    const ct = parsed.ct.slice();
    ct[ct.length >> 1] ^= 0x01;
    expect(await codeOf(openRequest({ ...parsed, ct }, secretKey))).toBe('ERR_OPEN_FAILED');
    expect(await codeOf(openRequest({ ...parsed, routing: { model: 'other', stream: true } }, secretKey))).toBe('ERR_OPEN_FAILED');
  });

  it('a sealed response stream round-trips, and reordering, truncation and tampering are refused', async () => {
    const { secretKey, request } = await sealed();
    const opened = await openRequest(parseSealedRequest(request.bytes), secretKey);
    const sealer = new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase);
    const frames = [await sealer.head(200, 'text/event-stream'), await sealer.data(utf8('data: a\n\n')), await sealer.data(utf8('data: b\n\n')), await sealer.end()];
    // The client opens with the keys it derived when sealing.
    for (const chunk of [1, 5, 4096]) {
      const events = await openAll(request.keys, concatBytes(...frames), chunk);
      expect(events.map((e) => e.type)).toEqual(['head', 'data', 'data', 'end']);
      expect(events[0]).toMatchObject({ status: 200, contentType: 'text/event-stream' });
      expect(fromUtf8((events[2] as { bytes: Uint8Array }).bytes)).toBe('data: b\n\n');
    }
    expect(await codeOf(openAll(request.keys, concatBytes(frames[0], frames[2], frames[1], frames[3]), 7))).toBe('ERR_STREAM_REORDERED');
    expect(await codeOf(openAll(request.keys, concatBytes(frames[0], frames[1], frames[2]), 7))).toBe('ERR_STREAM_TRUNCATED');
    const tampered = frames[1].slice();
    tampered[20] ^= 0x80;
    expect(await codeOf(openAll(request.keys, concatBytes(frames[0], tampered, frames[2], frames[3]), 7))).toBe('ERR_OPEN_FAILED');
  });
});
