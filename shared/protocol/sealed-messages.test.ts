import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, randomBytes, toHex, utf8, fromUtf8 } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { deriveRequestKeys, importInferenceSecret } from './request-keys.ts';
import { encodeSealedRequest, openRequest, parseSealedRequest, sealRequest } from './sealed-request.ts';
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

  it('frames arriving in one chunk (opened side by side) give the events and errors of opening them one by one', async () => {
    const { frames, keys } = await sealResponse(['data: a\n\n', 'data: b\n\n']);
    const whole = (parts: Uint8Array[]) => openAll(keys, concatBytes(...parts), 1 << 20);
    expect((await whole(frames)).map((e) => e.type)).toEqual(['head', 'data', 'data', 'end']);
    const flipped = frames[1].slice();
    flipped[20] ^= 0x80;
    await expectCode(whole([frames[0], flipped, frames[2], frames[3]]), 'ERR_OPEN_FAILED');
    // An earlier frame that does not open wins over a later one out of order.
    await expectCode(whole([frames[0], flipped, frames[3], frames[2]]), 'ERR_OPEN_FAILED');
    await expectCode(whole([frames[0], frames[2], frames[1], frames[3]]), 'ERR_STREAM_REORDERED');
    const forgedFinal = frames[1].slice();
    forgedFinal[8] = 1;
    await expectCode(whole([frames[0], forgedFinal, frames[2], frames[3]]), 'ERR_OPEN_FAILED');
    await expectCode(whole([...frames, frames[3]]), 'ERR_MALFORMED'); // bytes after the final frame
    await expectCode(whole([frames[0], frames[1], frames[2]]), 'ERR_STREAM_TRUNCATED');
  });

  it('pads events into buckets so token lengths do not show', async () => {
    const { frames } = await sealResponse(['data: a\n\n', `data: ${'x'.repeat(150)}\n\n`]);
    expect(frames[1].length).toBe(frames[2].length);
  });
});

/**
 * Golden vectors: the wire format pinned byte for byte (made with the protocol code as of 7725952, before
 * the deterministic CBOR encoder replaced cbor2's on this path). A fixed secret opens a fixed envelope,
 * re-encoding it gives the same bytes, and the response frames sealed with its keys are the same bytes.
 */
const GOLDEN_SECRET = new Uint8Array(32).map((_, i) => i);
const GOLDEN_ENVELOPE =
  'a961760162637459011046648943fc1e6aae0d30bb798afc598d876134a54046c3b2a44ac7a6b59370404146253123cb460b0d8dafd72c955a1697d8' +
  'eec3fd427858bb0c5c45cac02ed8e97306bcafc674caf15819297a05398b1bef9cda931239cb4bb42d30d330162b7f17cd874649407776dfee0e1780' +
  '3fba59da41845fe9f23c266e07789bbddf41c467286e6127482b48a7e9fc3db21744d08746bc94e4f4764f845d306958cbd4808574ed3e92f2b582e0' +
  'ef93b4cdf4490544dfa4542c0337c401d23854b641a1fdf01c8bff7bf79dbf16ce45be6ea054911b77def3af8415dc0ff62cccab5245b7ad960b6a38' +
  'c09e8dab9419bf08d64d248632537fcf588fb51f8d78a178f0b0e86a0a10279647196e38cc64e33b82fd6274731b0000019ab697e8006373696450a0' +
  'a1a2a3a4a5a6a7a8a9aaabacadaeaf6470617468742f76312f636861742f636f6d706c6574696f6e736473616c7450b6b27895697baf2ed976438363' +
  '80231765737569746577686b64662d7368613235362f6165732d3235362d67636d666d6574686f6464504f535467726f7574696e67a4656d6f64656c' +
  '6c73616d706c652d6e6772616d6673747265616df56a6d61785f746f6b656e7318406e73747265616d5f6f7074696f6e73a16d696e636c7564655f75' +
  '73616765f5';
const GOLDEN_AAD =
  'a86176016274731b0000019ab697e8006373696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6470617468742f76312f636861742f636f6d706c657469' +
  '6f6e736473616c7450b6b27895697baf2ed97643836380231765737569746577686b64662d7368613235362f6165732d3235362d67636d666d657468' +
  '6f6464504f535467726f7574696e67a4656d6f64656c6c73616d706c652d6e6772616d6673747265616df56a6d61785f746f6b656e7318406e737472' +
  '65616d5f6f7074696f6e73a16d696e636c7564655f7573616765f5';
const GOLDEN_HEAD_FRAME =
  '0000011000000000005497056b45b88051b2466523417bf6da7fed69173e8040dfe92eb493ebe6b71bbb9b95af72eeead0ce151fb78fa2661b82984a' +
  'fde12002497c2dd33464031fa2fb0b51964f99cba47e7975799b14f8e7b7862e37a71523bccbfb410bcab03d7a600bd06b2b78e4bbfa39312005ee02' +
  '5785d7a06ef73094ff0e7b0994f36f68b25b9706d54cf5018438e9b4ed9df77be69bb210eaa7cb26ba6d1901acb9bef7530115673fcb2f912713f3b4' +
  '1cf2b36809f8bd2f299661c3172d5dcd4d009fefd30060c15d4bc9ef863e4130d3b56eeafd6af48c3ea449beffcd65ce96e050092947031c4ddc1443' +
  'c903af2c263df6037351d27c4e79554fc648774be9a20cc668d258e0d26e1cac12cf65c402f0a08ba4';
const GOLDEN_DATA_FRAME =
  '000001100000000100fc9c34facecc1ae72a41e750ad43eff063176c9ebbaca56928345a8a1a838205cc5cd66793dcf421131228b55a90bf1aa42f9f' +
  '0d417b4f1875b2ec8f76228920229b895b4b673e7697105d32b7fc5a679f59c7607dc44504abc0eec795fac9d335adb0607d0573fff77b70146d1930' +
  '9a96997eb069b9545c0a30131ed32bd22def97d87ed91f3bedb55b17f4a5abb8ce9229709c9a5498a46b4ca91cb799d3b683996b2017069711da1483' +
  'bae9ffe7cb6077516a8f48ee160df526502b4a9e424516fe7cd57a96d8bffe4382cb5d5c3bc3ba6578f47df17798dc6b8d6c6fe52d53c587a1a9df28' +
  'd81302674701b467bd23a0f05cf9641897dfad97fe7af22d7aefa7bd9aeae66adb94e5efcabd0e567e';
const GOLDEN_END_FRAME =
  '0000011000000002013d63adbd6df9c3e113cadee4ab7bbb180197987abd5d4f3e9ef8a25c748688d6a5396ae1b0fb2a760c2846ebbc59c9e4ab08ca' +
  '23c2ff7fe34f3d1f27136b8e2fca62ccf43ef035ccbd61d1bcf6397b98711853dbd67a7a0ed4c9577f0ca4f983202ddccdf39454806b91ef8b5d696f' +
  '708a296ef943a964a76079377b5b788b3064f7e1529482af430d140c381daa73dbf24db1ec6a718191bb2de77d110711b6afcf721f95151cf4e7c7fd' +
  '9fc7e107310ee4b2c6c8ac38fe82c6ed587df72576369f08f3134fa4f301b538f6a53832d3f0e250c6ec072f1ca44eea65919d5eb8d5bfd927726532' +
  'a8616d82bd25a0abbe6aa1f636b317d650a71135c293358dadb9cb07e7c1a21ccb2d03bb29c6c578ac';

describe('sealed wire format (golden)', () => {
  it('opens the golden envelope, and re-encodes it to the same bytes', async () => {
    const secretKey = await importInferenceSecret(GOLDEN_SECRET.slice());
    const parsed = parseSealedRequest(fromHex(GOLDEN_ENVELOPE));
    expect(parsed).toMatchObject({ v: 1, suite: 'hkdf-sha256/aes-256-gcm', ts: 1_764_000_000_000, method: 'POST', path: '/v1/chat/completions' });
    expect(parsed.routing).toEqual({ model: 'sample-ngram', stream: true, stream_options: { include_usage: true }, max_tokens: 64 });
    expect(toHex(parsed.sid)).toBe('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    expect(toHex(parsed.salt)).toBe('b6b27895697baf2ed976438363802317');
    expect(toHex(encodeSealedRequest(parsed))).toBe(GOLDEN_ENVELOPE);
    const { ct: _ct, ...header } = parsed;
    expect(toHex(encodeDeterministic(header))).toBe(GOLDEN_AAD); // the AAD: every field but ct
    const opened = await openRequest(parsed, secretKey);
    expect(fromUtf8(opened.body)).toBe('{"messages":[{"role":"user","content":"golden"}]}');
    expect(toHex(opened.keys.requestIv)).toBe('cd236a9ddbc73af1a0a59ad8');
    expect(toHex(opened.keys.responseIvBase)).toBe('7fd9939445b6f22fea8c2eaf');
    const zero = await deriveRequestKeys(secretKey, new Uint8Array(16));
    expect([toHex(zero.requestIv), toHex(zero.responseIvBase)]).toEqual(['45a2eee246317087e879e8cb', 'c5c7efb72c5d30e39ce8193d']);
  });

  it('seals the golden response frames with the envelope\'s keys, and opens them', async () => {
    const secretKey = await importInferenceSecret(GOLDEN_SECRET.slice());
    const opened = await openRequest(parseSealedRequest(fromHex(GOLDEN_ENVELOPE)), secretKey);
    const sealer = new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase);
    expect(toHex(await sealer.head(200, 'text/event-stream'))).toBe(GOLDEN_HEAD_FRAME);
    expect(toHex(await sealer.data(utf8('data: {"x":1}\n\n')))).toBe(GOLDEN_DATA_FRAME);
    expect(toHex(await sealer.end())).toBe(GOLDEN_END_FRAME);
    for (const chunk of [1, 100, 4096]) {
      const events = await openAll(opened.keys, fromHex(GOLDEN_HEAD_FRAME + GOLDEN_DATA_FRAME + GOLDEN_END_FRAME), chunk);
      expect(events).toEqual([{ type: 'head', status: 200, contentType: 'text/event-stream' }, { type: 'data', bytes: utf8('data: {"x":1}\n\n') }, { type: 'end' }]);
    }
  });

  it('a freshly sealed request re-encodes to its own bytes (one encoding, whatever the routing)', async () => {
    const secretKey = await importInferenceSecret(GOLDEN_SECRET.slice());
    for (const routing of [{}, { model: 'm' }, { model: 'm', stream: false, n: 2, max_tokens: 4096, max_completion_tokens: 70_000, stream_options: { include_usage: false } }]) {
      const sealed = await sealRequest({ secretKey, secretId: randomBytes(16), method: 'POST', path: '/v1/completions', routing, body: utf8('{}'), now: Date.now() });
      expect(toHex(encodeSealedRequest(parseSealedRequest(sealed.bytes)))).toBe(toHex(sealed.bytes));
    }
  });
});
