import { describe, expect, it } from 'vitest';
import { concatBytes, randomBytes, utf8, fromUtf8 } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';
import { importInferenceSecret } from './request-keys.ts';
import { openRequest, parseSealedRequest, sealRequest } from './sealed-request.ts';
import { ResponseOpener, ResponseSealer, type ResponseEvent } from './sealed-response.ts';
import { paddedSize } from './padding.ts';

async function expectCode(p: Promise<unknown> | (() => unknown), code: string) {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(ObscuraError);
    expect((e as ObscuraError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, got success`);
}

async function sealedPair() {
  const secret = randomBytes(32);
  const secretKey = await importInferenceSecret(secret);
  const secretId = randomBytes(16);
  const body = utf8(JSON.stringify({ messages: [{ role: 'user', content: 'the canary sings' }] }));
  const sealed = await sealRequest({ secretKey, secretId, method: 'POST', path: '/v1/chat/completions', routing: { model: 'm', stream: true }, body, now: 1_700_000_000_000 });
  return { secretKey, secretId, body, sealed };
}

describe('sealed request', () => {
  it('opens with the same secret and restores the body and header', async () => {
    const { secretKey, body, sealed } = await sealedPair();
    const opened = await openRequest(parseSealedRequest(sealed.bytes), secretKey);
    expect(fromUtf8(opened.body)).toBe(fromUtf8(body));
    expect(opened.header.routing).toEqual({ model: 'm', stream: true });
    expect(opened.header.path).toBe('/v1/chat/completions');
  });

  it('does not carry the plaintext', async () => {
    const { sealed } = await sealedPair();
    expect(Buffer.from(sealed.bytes).includes(Buffer.from('canary'))).toBe(false);
  });

  it('refuses another secret', async () => {
    const { sealed } = await sealedPair();
    await expectCode(openRequest(parseSealedRequest(sealed.bytes), await importInferenceSecret(randomBytes(32))), 'ERR_OPEN_FAILED');
  });

  it('refuses a flipped byte anywhere in the ciphertext', async () => {
    const { secretKey, sealed } = await sealedPair();
    const parsed = parseSealedRequest(sealed.bytes);
    for (const i of [0, Math.floor(parsed.ct.length / 2), parsed.ct.length - 1]) {
      const ct = parsed.ct.slice();
      ct[i] ^= 0x01;
      await expectCode(openRequest({ ...parsed, ct }, secretKey), 'ERR_OPEN_FAILED');
    }
  });

  it('refuses changed routing fields, path, method or timestamp (all authenticated)', async () => {
    const { secretKey, sealed } = await sealedPair();
    const parsed = parseSealedRequest(sealed.bytes);
    await expectCode(openRequest({ ...parsed, routing: { model: 'other', stream: true } }, secretKey), 'ERR_OPEN_FAILED');
    await expectCode(openRequest({ ...parsed, path: '/v1/embeddings' }, secretKey), 'ERR_OPEN_FAILED');
    await expectCode(openRequest({ ...parsed, method: 'GET' }, secretKey), 'ERR_OPEN_FAILED');
    await expectCode(openRequest({ ...parsed, ts: parsed.ts + 1 }, secretKey), 'ERR_OPEN_FAILED');
  });

  it('reports malformed envelopes as ERR_MALFORMED', async () => {
    const { sealed } = await sealedPair();
    await expectCode(() => parseSealedRequest(sealed.bytes.subarray(0, sealed.bytes.length - 3)), 'ERR_MALFORMED');
    await expectCode(() => parseSealedRequest(utf8('{"messages":[]}')), 'ERR_MALFORMED');
  });

  it('pads the plaintext to size buckets so prompt lengths do not show', async () => {
    const secretKey = await importInferenceSecret(randomBytes(32));
    const a = await sealRequest({ secretKey, secretId: randomBytes(16), method: 'POST', path: '/p', routing: {}, body: utf8('x'), now: 1 });
    const b = await sealRequest({ secretKey, secretId: randomBytes(16), method: 'POST', path: '/p', routing: {}, body: utf8('x'.repeat(200)), now: 1 });
    expect(parseSealedRequest(a.bytes).ct.length).toBe(parseSealedRequest(b.bytes).ct.length);
    expect(paddedSize(1)).toBe(256);
  });
});

async function sealResponse(events: string[]) {
  const { secretKey, sealed } = await sealedPair();
  const opened = await openRequest(parseSealedRequest(sealed.bytes), secretKey);
  const sealer = new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase);
  const frames = [await sealer.head(200, 'text/event-stream')];
  for (const e of events) frames.push(await sealer.data(utf8(e)));
  frames.push(await sealer.end());
  return { frames, keys: sealed.keys };
}

async function openAll(keys: { responseKey: CryptoKey; responseIvBase: Uint8Array }, bytes: Uint8Array, chunk = 7) {
  const opener = new ResponseOpener(keys.responseKey, keys.responseIvBase);
  const events: ResponseEvent[] = [];
  for (let i = 0; i < bytes.length; i += chunk) events.push(...(await opener.push(bytes.subarray(i, i + chunk))));
  opener.finish();
  return events;
}

describe('sealed response stream', () => {
  it('round-trips head, events and end, whatever the chunking', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n', 'data: b\n\n']);
    const events = await openAll(keys, concatBytes(...frames), 5);
    expect(events.map((e) => e.type)).toEqual(['head', 'data', 'data', 'end']);
    expect(fromUtf8((events[2] as { bytes: Uint8Array }).bytes)).toBe('data: b\n\n');
  });

  it('detects reordered events', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n', 'data: b\n\n']);
    await expectCode(openAll(keys, concatBytes(frames[0], frames[2], frames[1], frames[3])), 'ERR_STREAM_REORDERED');
  });

  it('detects a dropped event', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n', 'data: b\n\n']);
    await expectCode(openAll(keys, concatBytes(frames[0], frames[2], frames[3])), 'ERR_STREAM_REORDERED');
  });

  it('detects truncation: no authenticated end', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n', 'data: b\n\n']);
    await expectCode(openAll(keys, concatBytes(frames[0], frames[1], frames[2])), 'ERR_STREAM_TRUNCATED');
    await expectCode(openAll(keys, concatBytes(...frames).subarray(0, 100)), 'ERR_STREAM_TRUNCATED');
  });

  it('detects a flipped byte and a forged final flag', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n']);
    const flipped = frames[1].slice();
    flipped[20] ^= 0x80;
    await expectCode(openAll(keys, concatBytes(frames[0], flipped, frames[2])), 'ERR_OPEN_FAILED');
    const forgedFinal = frames[1].slice();
    forgedFinal[8] = 1; // claim frame 1 is the final one
    await expectCode(openAll(keys, concatBytes(frames[0], forgedFinal)), 'ERR_OPEN_FAILED');
  });

  it('refuses frames spliced from another response', async () => {
    const a = await sealResponse(['data: a\n\n']);
    const b = await sealResponse(['data: b\n\n']);
    await expectCode(openAll(a.keys, concatBytes(a.frames[0], b.frames[1], a.frames[2])), 'ERR_OPEN_FAILED');
  });

  it('pads events into buckets so token lengths do not show', async () => {
    const { frames } = await sealResponse(['data: a\n\n', `data: ${'x'.repeat(150)}\n\n`]);
    expect(frames[1].length).toBe(frames[2].length);
  });
});
