import { describe, expect, it } from 'vitest';
import { bufferOf, concatBytes, fromHex, randomBytes, toHex, utf8, fromUtf8 } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { deriveRequestKeys, importInferenceSecret } from './request-keys.ts';
import { encodeSealedRequest, openRequest, parseSealedRequest, sealRequest } from './sealed-request.ts';
import { ResponseOpener, ResponseSealer, type ResponseEvent } from './sealed-response.ts';
import { pad, paddedSize } from './padding.ts';

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

  it('a complete answer in one frame: head, data and end from one seal; nothing may follow it', async () => {
    const { secretKey, sealed } = await sealedPair();
    const { keys } = await openRequest(parseSealedRequest(sealed.bytes), secretKey);
    const complete = await new ResponseSealer(keys.responseKey, keys.responseIvBase).complete(400, 'application/json', utf8('{"error":{}}'));
    expect(await openAll(keys, complete, 1 << 20)).toEqual([{ type: 'head', status: 400, contentType: 'application/json' }, { type: 'data', bytes: utf8('{"error":{}}') }, { type: 'end' }]);
    const empty = await new ResponseSealer(keys.responseKey, keys.responseIvBase).complete(204, 'text/plain', new Uint8Array(0));
    expect((await openAll(keys, empty)).map((e) => e.type)).toEqual(['head', 'end']);
    await expectCode(openAll(keys, concatBytes(complete, complete)), 'ERR_MALFORMED'); // bytes after the final frame
    await expectCode(openAll(keys, complete.subarray(0, complete.length - 1)), 'ERR_STREAM_TRUNCATED');
    const flipped = complete.slice();
    flipped[40] ^= 0x01;
    await expectCode(openAll(keys, flipped), 'ERR_OPEN_FAILED');
    const notFinal = complete.slice();
    notFinal[8] = 0; // claim more frames follow: the header is the associated data
    await expectCode(openAll(keys, notFinal), 'ERR_OPEN_FAILED');
    const sealer = new ResponseSealer(keys.responseKey, keys.responseIvBase);
    await sealer.head(200, 'application/json');
    await expectCode(() => sealer.complete(200, 'application/json', utf8('{}')), 'ERR_USAGE');
  });

  it('a final head must carry the body, and only a final head may', async () => {
    const { secretKey, sealed } = await sealedPair();
    const { keys } = await openRequest(parseSealedRequest(sealed.bytes), secretKey);
    // Frames sealed by hand with the right keys, so only the content is wrong.
    const frame = async (content: Record<string, unknown>, flags: number) => {
      const plaintext = pad(encodeDeterministic(content));
      const header = new Uint8Array(9);
      new DataView(header.buffer).setUint32(0, plaintext.length + 16);
      header[8] = flags;
      const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: bufferOf(keys.responseIvBase), additionalData: bufferOf(header) }, keys.responseKey, bufferOf(plaintext));
      return concatBytes(header, new Uint8Array(ct));
    };
    await expectCode(openAll(keys, await frame({ status: 200, contentType: 'application/json' }, 0x01)), 'ERR_MALFORMED');
    await expectCode(openAll(keys, await frame({ status: 200, contentType: 'application/json', body: 'text, not bytes' }, 0x01)), 'ERR_MALFORMED');
    await expectCode(openAll(keys, await frame({ status: 200, contentType: 'application/json', body: utf8('{}') }, 0x00)), 'ERR_MALFORMED');
    expect((await openAll(keys, await frame({ status: 200, contentType: 'application/json', body: utf8('{}') }, 0x01))).map((e) => e.type)).toEqual(['head', 'data', 'end']);
  });

  it('pads events into buckets so token lengths do not show', async () => {
    const { frames } = await sealResponse(['data: a\n\n', `data: ${'x'.repeat(150)}\n\n`]);
    expect(frames[1].length).toBe(frames[2].length);
  });
});

/**
 * Golden vectors: the wire format pinned byte for byte. A fixed secret opens a fixed envelope,
 * re-encoding it gives the same bytes, and the response frames sealed with its keys are the same bytes.
 * The key schedule itself is recomputed below from its definition with plain WebCrypto HKDF.
 */
const GOLDEN_SECRET = new Uint8Array(32).map((_, i) => i);
const GOLDEN_ENVELOPE =
  'a9617601626374590110c64cfa993771f7b392f7c5f191672cdfcc75b64db9f8da0a6543819d74dcc44733c6a959a785d7903c9c6df900160654b99a' +
  'a773f65f749b7de6d4a8e60806a9a27018a05d4efd5eeff1652fb9bf455c0f7f07e457a1e63c97b330c87073887f5f2b14ebb10aab04cb8894aeee31' +
  'd796f683c685294a17bad7f88c5863adb4abe806370b5bec6b3ca44d1422be5565f8c1893e62ef8cbdf412703121b0ceaa3161107d663e6e66ba491d' +
  '18ba26d96f8bb1136f12c686e4557e163ed004498197d40250aed4aba263f0e4010e0daf3687734ec3b58302ea55f82a1ad72508cc4572836901603e' +
  'b269549347ccc9d7095779850ec52a416a4e70a74a3f68981b4b1f057fa01c22a201d9ba13a48ecbafe96274731b0000019ab697e8006373696450a0' +
  'a1a2a3a4a5a6a7a8a9aaabacadaeaf6470617468742f76312f636861742f636f6d706c6574696f6e736473616c7450a92d4d3dbbd2ec7e49b9101e08' +
  '81e1f06573756974657820686b64662d7368613235362d6b6579626c6f636b2f6165732d3235362d67636d666d6574686f6464504f535467726f7574' +
  '696e67a4656d6f64656c6c73616d706c652d6e6772616d6673747265616df56a6d61785f746f6b656e7318406e73747265616d5f6f7074696f6e73a1' +
  '6d696e636c7564655f7573616765f5';
const GOLDEN_AAD =
  'a86176016274731b0000019ab697e8006373696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6470617468742f76312f636861742f636f6d706c657469' +
  '6f6e736473616c7450a92d4d3dbbd2ec7e49b9101e0881e1f06573756974657820686b64662d7368613235362d6b6579626c6f636b2f6165732d3235' +
  '362d67636d666d6574686f6464504f535467726f7574696e67a4656d6f64656c6c73616d706c652d6e6772616d6673747265616df56a6d61785f746f' +
  '6b656e7318406e73747265616d5f6f7074696f6e73a16d696e636c7564655f7573616765f5';
const GOLDEN_HEAD_FRAME =
  '00000110000000000039dd6793dcfc775ffeee964e2203f1a7fe621d5a501bd73a973c9f0da3c4c5965329cfb44572894a5f6feb91339c0fe26288fa' +
  '555bf769ab3d39de8e7885fa46793112b2e2ee8f1444e949f90e64c23611a2c2d68ca877d70c816d3f78fd12e73318d944177f8d8aa77d4e82687ed1' +
  '6eb16d415a4766e4c7d0b325b89b66ceffee42b630570b625042455525e184287fa73fe5c0a18fde9adf3d8593a1e8405f450a01d23fa437dff40ee5' +
  '76e4a9410d8c65e47d67c741292cfbdacb9c23ddd0854e90d9b76c7d1febffc9dca57b363678dd67e8fd47c479e139efdd304e4b3192ca9cf127ed70' +
  '1dc83efd668c6d75a87b0404454cf45483399f5561f94981174f00800d4a608ddd764b1462364249d5';
const GOLDEN_DATA_FRAME =
  '000001100000000100065c835144c183b24a6831d94fa13b8cf50553c8132411ba36b3de744feab6bb43c0626cc7d811607806af5cf2bc12b175f83c' +
  '539b21fe2d0305488db55b969dbed778b63202995ca2fb811cf156a7d9f29b3f305c0069bd90efface98f21ef3aa89f68ec043fac112fd36d65e3406' +
  '04e4d112ef6e819224e65d98e6effafdbafa8a361c05cc9ea96e533b3f367c5554063178b5ca81dfd57f0a9191dc4fb62715311ba0e6f66310333cb2' +
  '620c4890ef908f37a4e7433c7a63413ce53db977129c2799e30f4e69e63bb563b586417dcc3f77356b41d8b20611b2471fa879a1bb1bd16e342ae9d2' +
  '6b3c9b4ae53a6f162c7bfebfa6205a17a00f3f0f7cb53d14531adf7cd3f826645e7a78b94df5cba5f7';
const GOLDEN_END_FRAME =
  '0000011000000002013c45f8a4014c15b46c9f15b580375103c1eb040ea4068ac5622586e3de19af3a287eb4f4bb223b5190f096de09742e01a8998c' +
  'f7eb6c2082adca6e61bbf71c619747c2e3ce920be53259d6188ad55b183eff83382a9dfc2d373cd72bcd6ef9fd76d9b5e2dd33e4a4206827232ec2ba' +
  '0b327d1e22f3157bdb8044268912781d0e385c91aabd92c9f20f57eaca1268a227613504730a57e4d024fd872846a7eeb4552b46e33c7bd97e57127e' +
  '9423ff752678b60fd7044013671b722ce5d436550b2b196834d248babf35a174f8422710c352125a7c7055f73c0331e647b4bbf99f6d4e4eefbabb80' +
  '6e7251c097db22c61738ad12ac1f3b392ddda5081e5ebda46da16013fb40e9c310121b5d625f3cf64a';
const GOLDEN_COMPLETE_FRAME =
  '00000110000000000139dd678fddfe6644fbe3a44618b3b8fea0710f4c4a0ef73694412612a5d3dfcd5331de8e482f9f4e4c7afa905aff6e960be794' +
  '7a318406c53d39de8e7885fa46793112b2e2ee8f1444e949f90e64c23611a2c2d68ca877d70c816d3f78fd12e73318d944177f8d8aa77d4e82687ed1' +
  '6eb16d415a4766e4c7d0b325b89b66ceffee42b630570b625042455525e184287fa73fe5c0a18fde9adf3d8593a1e8405f450a01d23fa437dff40ee5' +
  '76e4a9410d8c65e47d67c741292cfbdacb9c23ddd0854e90d9b76c7d1febffc9dca57b363678dd67e8fd47c479e139efdd304e4b3192ca9cf127ed70' +
  '1dc83efd668c6d75a87b0404454cf45483399f5561f9498117cd346894b20b8e849db880ef8715974f';

describe('sealed wire format (golden)', () => {
  it('opens the golden envelope, and re-encodes it to the same bytes', async () => {
    const secretKey = await importInferenceSecret(GOLDEN_SECRET.slice());
    const parsed = parseSealedRequest(fromHex(GOLDEN_ENVELOPE));
    expect(parsed).toMatchObject({ v: 1, suite: 'hkdf-sha256-keyblock/aes-256-gcm', ts: 1_764_000_000_000, method: 'POST', path: '/v1/chat/completions' });
    expect(parsed.routing).toEqual({ model: 'sample-ngram', stream: true, stream_options: { include_usage: true }, max_tokens: 64 });
    expect(toHex(parsed.sid)).toBe('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    expect(toHex(parsed.salt)).toBe('a92d4d3dbbd2ec7e49b9101e0881e1f0');
    expect(toHex(encodeSealedRequest(parsed))).toBe(GOLDEN_ENVELOPE);
    const { ct: _ct, ...header } = parsed;
    expect(toHex(encodeDeterministic(header))).toBe(GOLDEN_AAD); // the AAD: every field but ct
    const opened = await openRequest(parsed, secretKey);
    expect(fromUtf8(opened.body)).toBe('{"messages":[{"role":"user","content":"golden"}]}');
    expect(toHex(opened.keys.requestIv)).toBe('855e322cbcfda6bf55da9459');
    expect(toHex(opened.keys.responseIvBase)).toBe('90a5c7033b7e74cbd65551db');
    const zero = await deriveRequestKeys(secretKey, new Uint8Array(16));
    expect([toHex(zero.requestIv), toHex(zero.responseIvBase)]).toEqual(['88bb8e76c73c4d80e4906a27', '04528824cae72ba6b7017746']);
  });

  it('the key schedule is one HKDF-SHA256 block, cut into request key, request IV, response key, response IV base', async () => {
    // Computed here from the definition, not through request-keys.ts: HKDF(secret, salt, label, 88 bytes).
    const parsed = parseSealedRequest(fromHex(GOLDEN_ENVELOPE));
    const ikm = await crypto.subtle.importKey('raw', GOLDEN_SECRET.slice(), 'HKDF', false, ['deriveBits']);
    const block = new Uint8Array(
      await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: bufferOf(parsed.salt), info: bufferOf(utf8('obscura/v1 request key block')) }, ikm, 88 * 8),
    );
    const aes = (raw: Uint8Array) => crypto.subtle.importKey('raw', bufferOf(raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
    const [requestKey, requestIv, responseKey, responseIvBase] = [await aes(block.slice(0, 32)), block.slice(32, 44), await aes(block.slice(44, 76)), block.slice(76, 88)];
    const { ct, ...header } = parsed;
    const padded = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bufferOf(requestIv), additionalData: bufferOf(encodeDeterministic(header)) }, requestKey, bufferOf(ct)));
    expect(fromUtf8(padded)).toContain('{"messages":[{"role":"user","content":"golden"}]}');
    expect(toHex(responseIvBase)).toBe('90a5c7033b7e74cbd65551db');
    // Frame 0's IV is the base itself (seq 0); its header is the associated data.
    const frame = fromHex(GOLDEN_COMPLETE_FRAME);
    const opened = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bufferOf(responseIvBase), additionalData: bufferOf(frame.subarray(0, 9)) }, responseKey, bufferOf(frame.subarray(9)));
    expect(opened.byteLength).toBe(frame.length - 9 - 16);
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

  it('seals the golden complete answer as one final head frame, and opens it as head, data and end', async () => {
    const secretKey = await importInferenceSecret(GOLDEN_SECRET.slice());
    const opened = await openRequest(parseSealedRequest(fromHex(GOLDEN_ENVELOPE)), secretKey);
    const sealer = new ResponseSealer(opened.keys.responseKey, opened.keys.responseIvBase);
    expect(toHex(await sealer.complete(200, 'application/json', utf8('{"x":1}')))).toBe(GOLDEN_COMPLETE_FRAME);
    expect(fromHex(GOLDEN_COMPLETE_FRAME)[8]).toBe(0x01); // the FINAL flag, on frame 0
    for (const chunk of [1, 100, 4096]) {
      const events = await openAll(opened.keys, fromHex(GOLDEN_COMPLETE_FRAME), chunk);
      expect(events).toEqual([{ type: 'head', status: 200, contentType: 'application/json' }, { type: 'data', bytes: utf8('{"x":1}') }, { type: 'end' }]);
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
