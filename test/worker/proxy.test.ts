/**
 * The encryption proxy's adapters against the sample AI code in the real gVisor sandbox (started by the
 * real supervisor), with the proxy in this process so the test sees what it buffers: OpenAI and Triton
 * generate requests sealed both ways, streamed events one padded frame each, errors of the AI code
 * sealed, cancellation reaching the AI code, and backpressure instead of buffering.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8 } from '../../shared/bytes.ts';
import { sealRequest } from '../../shared/protocol/sealed-request.ts';
import { DEFAULT_PADDING_BUCKETS_BYTES } from '../../shared/protocol/padding.ts';
import type { AiCodeSupervisor } from '../../backend/ai-code-supervisor.ts';
import { generations, InProcessProxy, SAMPLE, sampleSupervisor, sampleWeights, sseData, until } from './helpers.ts';

const CANARY = `canary-${randomBytes(10).toString('hex')}`;
const TAG = 16;
const PADDED = new Set(DEFAULT_PADDING_BUCKETS_BYTES.map((b) => b + TAG));

let dir: string;
let supervisor: AiCodeSupervisor;
let proxy: InProcessProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-proxy-test-'));
  supervisor = sampleSupervisor({ stateDir: join(dir, 'state'), log: () => {}, weights: sampleWeights() });
  await supervisor.start();
  proxy = new InProcessProxy(dir, () => supervisor.socketPath);
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await supervisor?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the OpenAI adapter', () => {
  it('forwards a chat completion sealed both ways, routing fields plaintext', async () => {
    const x = await proxy.call('POST', '/v1/chat/completions', { model: SAMPLE, messages: [{ role: 'user', content: `the white rabbit ${CANARY}` }], max_tokens: 8 });
    expect(x.header.routing).toEqual({ model: SAMPLE, max_tokens: 8 });
    expect(x.head).toEqual({ status: 200, contentType: 'application/json' });
    const r = JSON.parse(x.body);
    expect(r.object).toBe('chat.completion');
    expect(r.usage.completion_tokens).toBe(8);
    expect(x.raw.includes(CANARY)).toBe(false);
    expect(x.complete).toBe(true);
    // The answer was whole before anything was sent: one complete frame (head, body and end), padded.
    expect(x.frameSizes).toHaveLength(1);
    expect(PADDED.has(x.frameSizes[0])).toBe(true);
  });

  it('lists models (GET, no body)', async () => {
    const x = await proxy.call('GET', '/v1/models');
    expect(JSON.parse(x.body).data[0].id).toBe(SAMPLE);
  });
});

describe('the Triton generate adapter', () => {
  it('generate: {text_input, parameters} in, {model_name, model_version, text_output} out', async () => {
    const x = await proxy.call('POST', `/v2/models/${SAMPLE}/generate`, { id: 'req-7', text_input: `It was the best of times ${CANARY}`, parameters: { max_tokens: 12, temperature: 0.7, stream: false } });
    // The model (from the path), max_tokens and stream are routing; text_input and temperature are sealed.
    expect(x.header.routing).toEqual({ model: SAMPLE, max_tokens: 12, stream: false });
    expect(x.head).toEqual({ status: 200, contentType: 'application/json' });
    const r = JSON.parse(x.body);
    expect(r).toEqual({ id: 'req-7', model_name: SAMPLE, model_version: '1', text_output: expect.any(String) });
    expect(r.text_output.split(/\s+/).length).toBeGreaterThan(3);
    expect(x.raw.includes(CANARY)).toBe(false);
  });

  it('generate with a model version in the path', async () => {
    const x = await proxy.call('POST', `/v2/models/${SAMPLE}/versions/1/generate`, { text_input: 'the sea', parameters: { max_tokens: 4 } });
    expect(JSON.parse(x.body).model_version).toBe('1');
  });

  it('generate_stream: one SSE event per sealed frame, every frame padded to a bucket', async () => {
    const x = await proxy.call('POST', `/v2/models/${SAMPLE}/generate_stream`, { text_input: `Call me Ishmael ${CANARY}`, parameters: { max_tokens: 20, stream: true } });
    expect(x.head?.status).toBe(200);
    expect(x.head?.contentType).toMatch(/^text\/event-stream/);
    const events = sseData(x.body);
    expect(events).toHaveLength(20);
    for (const e of events) expect(Object.keys(e).sort()).toEqual(['model_name', 'model_version', 'text_output']);
    // head + 20 events + end, each sealed on its own and padded: sizes show buckets, not token lengths.
    expect(x.frameSizes).toHaveLength(22);
    for (const s of x.frameSizes) expect(PADDED.has(s)).toBe(true);
    expect(x.raw.includes(CANARY)).toBe(false);
  });

  it('refuses routing fields Triton does not have, and a routing model other than the path', async () => {
    const send = async (routing: Record<string, unknown>) => {
      const sealed = await sealRequest({ secretKey: proxy.key, secretId: new Uint8Array(proxy.secretId), method: 'POST', path: `/v2/models/${SAMPLE}/generate`, routing, body: utf8('{"text_input":"x"}'), now: Date.now() });
      const res = await proxy.post(sealed.bytes);
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return { status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
    };
    expect(await send({ n: 2 })).toMatchObject({ status: 400, body: { error: { code: 'ERR_MALFORMED' } } });
    expect(await send({ model: 'other-model' })).toMatchObject({ status: 400, body: { error: { code: 'ERR_MALFORMED' } } });
  });

  it('refuses paths no adapter serves', async () => {
    for (const path of [`/v2/models/${SAMPLE}/infer`, '/v2/models/../v1/models/generate', '/v1/models/../../healthz', '/healthz']) {
      const x = await proxy.call('POST', path, {});
      expect(x.wireStatus).toBe(400);
      expect(JSON.parse(x.body).error.code).toBe('ERR_USAGE');
    }
  });
});

describe('errors of the AI code', () => {
  it('travel sealed: the status in the sealed head, the message (which quotes the request) in a sealed frame', async () => {
    const x = await proxy.call('POST', `/v2/models/${SAMPLE}/generate`, { text_input: 'the sea', parameters: { temperature: CANARY } });
    expect(x.wireStatus).toBe(200); // all the network sees
    expect(x.head?.status).toBe(400);
    expect(JSON.parse(x.body).error).toContain(CANARY);
    expect(x.raw.includes(CANARY)).toBe(false);
    expect(x.raw.includes('must be a number')).toBe(false);
    expect(x.complete).toBe(true);
  });

  it('an OpenAI error (unknown model) is sealed too', async () => {
    const x = await proxy.call('POST', '/v1/chat/completions', { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
    expect(x.wireStatus).toBe(200);
    expect(x.head?.status).toBe(404);
    expect(JSON.parse(x.body).error.code).toBe('model_not_found');
    expect(x.raw.includes('not served')).toBe(false);
  });
});

describe('cancellation and backpressure', () => {
  it('a client that goes away cancels the AI code\'s generation (it sees its socket close)', async () => {
    const before = await generations(supervisor.socketPath!);
    // 8 × 4096 events (~10 MB sealed): more than every socket buffer on the way can hold, so the AI code
    // is still generating when the client leaves, however fast the machine.
    const { bytes, opener } = await proxy.seal('POST', '/v1/chat/completions', { model: SAMPLE, messages: [{ role: 'user', content: 'the sea' }], max_tokens: 4096, n: 8, stream: true });
    const res = await proxy.post(bytes);
    let data = 0;
    for await (const chunk of res) {
      data += (await opener.push(new Uint8Array(chunk as Buffer))).filter((e) => e.type === 'data').length;
      if (data >= 3) break; // leaving the loop destroys the response: the client is gone
    }
    const after = await until(async () => {
      const g = await generations(supervisor.socketPath!);
      return g.aborted > before.aborted ? g : undefined;
    }, 'the AI code to count an aborted generation');
    expect(after.aborted).toBe(before.aborted + 1);
    expect(after.completed).toBe(before.completed);
    const line = await until(() => proxy.logs.events.find((e) => e.event === 'inference' && e.outcome === 'cancelled'), 'the proxy to log the cancellation');
    expect(line).toMatchObject({ adapter: 'openai', path: '/v1/chat/completions', stream: true });
  });

  it('a slow reader holds the AI code back: the proxy queues about a frame, not the response', async () => {
    const before = await generations(supervisor.socketPath!);
    // 8 choices x 4096 tokens, streamed: about 9 MB of sealed frames.
    const { bytes, opener } = await proxy.seal('POST', '/v1/chat/completions', { model: SAMPLE, messages: [{ role: 'user', content: 'the sea' }], max_tokens: 4096, n: 8, stream: true });
    const res = await proxy.post(bytes);
    const slot = proxy.maxQueuedBytes.length - 1;
    res.pause();
    await new Promise((r) => setTimeout(r, 2_000));
    // The reader took nothing for 2 s: the AI code is still generating (held back), and the proxy has
    // queued at most about one frame beyond the socket's high-water mark.
    const during = await generations(supervisor.socketPath!);
    expect(during.active).toBe(before.active + 1);
    expect(during.completed).toBe(before.completed);
    expect(proxy.maxQueuedBytes[slot]).toBeLessThan(128 * 1024);

    let total = 0;
    let events = 0;
    for await (const chunk of res) {
      total += (chunk as Buffer).length;
      events += (await opener.push(new Uint8Array(chunk as Buffer))).filter((e) => e.type === 'data').length;
    }
    opener.finish();
    expect(total).toBeGreaterThan(5 * 1024 * 1024);
    expect(events).toBeGreaterThan(8 * 4096);
    expect(proxy.maxQueuedBytes[slot]).toBeLessThan(128 * 1024);
    const after = await generations(supervisor.socketPath!);
    expect(after.completed).toBe(before.completed + 1);
  }, 120_000);
});

describe('framing of answers that are not streamed', () => {
  // An AI code stand-in (plain HTTP on a unix socket) that answers in parts: what the proxy does with an
  // answer that is not whole when its head arrives, or is too large for one frame.
  let fakeDir: string;
  let fake: import('node:http').Server;
  let fakeProxy: InProcessProxy;
  beforeAll(async () => {
    const { createServer } = await import('node:http');
    fakeDir = mkdtempSync(join(tmpdir(), 'obscura-proxy-framing-'));
    fake = createServer(async (req, res) => {
      let text = '';
      for await (const c of req) text += c;
      if (JSON.parse(text).model === 'slow') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"part":1,');
        setTimeout(() => res.end(`"part2":"${CANARY}"}`), 100);
      } else {
        const big = JSON.stringify({ text: 'y'.repeat(200 * 1024) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
        res.end(big);
      }
    });
    await new Promise<void>((r) => fake.listen(join(fakeDir, 'ai.sock'), r));
    fakeProxy = new InProcessProxy(fakeDir, () => join(fakeDir, 'ai.sock'));
    await fakeProxy.start();
  });
  afterAll(async () => {
    await fakeProxy?.stop();
    fake?.closeAllConnections();
    await new Promise((r) => fake?.close(r));
    rmSync(fakeDir, { recursive: true, force: true });
  });

  const call = (model: string) => fakeProxy.call('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] });

  it('an answer still arriving when its head came goes as head, data frames and end, opened whole', async () => {
    const x = await call('slow');
    expect(x.head).toEqual({ status: 200, contentType: 'application/json' });
    expect(JSON.parse(x.body)).toEqual({ part: 1, part2: CANARY });
    expect(x.complete).toBe(true);
    expect(x.frameSizes.length).toBeGreaterThanOrEqual(3); // head, ≥ 1 data, end
    expect(x.raw.includes(CANARY)).toBe(false);
  });

  it('a whole answer larger than a frame goes as head, data frames of at most 64 KiB and end', async () => {
    const x = await call('big');
    expect(JSON.parse(x.body).text).toHaveLength(200 * 1024);
    expect(x.complete).toBe(true);
    expect(x.frameSizes.length).toBeGreaterThanOrEqual(6); // head, ≥ 4 data frames (200 KiB / 64 KiB), end
  });
});
