/**
 * The spine, end to end: the official `openai` client against the client proxy of a system started
 * as `npm start` starts it, with recording relays as the untrusted network around the edge.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { createObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { decodeStrict, encodeDeterministic } from '../../shared/cbor.ts';
import { alive, filesContaining, filesWrittenSince, freePort, RecordingRelay, startSystem, WRANGLER_HOME_LOGS, type RunningSystem } from './harness.ts';

const startedAt = Date.now();
const CANARY = `canary-${randomBytes(12).toString('hex')}`;
const clientToEdge = new RecordingRelay();
const edgeToWorker = new RecordingRelay();
let system: RunningSystem;
let openai: OpenAI;

beforeAll(async () => {
  system = await startSystem({ relays: { clientToEdge, edgeToWorker } });
  openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
});

afterAll(async () => {
  const tree = system.processes;
  expect(tree.length).toBeGreaterThanOrEqual(4); // service, worker, runsc, wrangler/workerd at least
  const code = await system?.stop('SIGINT');
  expect(code).toBe(0);
  // Ctrl-C leaves no runsc, workerd or Node process behind.
  await new Promise((r) => setTimeout(r, 500));
  expect(alive(tree)).toEqual([]);
});

describe('the official openai client through the client proxy', () => {
  it('lists models', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toContain('sample-ngram');
  });

  it('completes a chat without echoing the prompt', async () => {
    const prompt = `Tell me about the white rabbit and the sea ${CANARY}`;
    const r = await openai.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: prompt }], max_tokens: 24 });
    const text = r.choices[0].message.content ?? '';
    expect(text.split(/\s+/).length).toBeGreaterThan(5);
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain(prompt);
    expect(r.usage?.completion_tokens).toBe(24);
  });

  it('streams a chat completion event by event, with usage', async () => {
    const stream = await openai.chat.completions.create({
      model: 'sample-ngram',
      messages: [{ role: 'user', content: `It was the best of times ${CANARY}` }],
      max_tokens: 16,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let usage: number | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    expect(chunks).toBeGreaterThanOrEqual(16);
    expect(usage).toBe(16);
    expect(text.length).toBeGreaterThan(10);
    expect(text).not.toContain(CANARY);
  });

  it('serves legacy completions and embeddings sealed too', async () => {
    const c = await openai.completions.create({ model: 'sample-ngram', prompt: `Call me Ishmael ${CANARY}`, max_tokens: 8 });
    expect(c.choices[0].text.length).toBeGreaterThan(0);
    const e = await openai.embeddings.create({ model: 'sample-ngram', input: `the sea ${CANARY}` });
    expect(e.data[0].embedding.length).toBe(64);
  });
});

describe('the client proxy', () => {
  it('refuses other Host names (DNS rebinding) and browser origins', async () => {
    const port = new URL(system.proxyUrl).port;
    const rebinding = await request(`http://127.0.0.1:${port}/v1/models`, { headers: { host: `evil.example:${port}` } });
    expect(rebinding.statusCode).toBe(403);
    await rebinding.body.dump();
    const page = await request(`http://127.0.0.1:${port}/v1/models`, { headers: { origin: 'https://evil.example' } });
    expect(page.statusCode).toBe(403);
    await page.body.dump();
  });

  it('runs on its own as `obscura proxy --endpoint`', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'obscura.mjs'), 'proxy', '--endpoint', system.edgeUrl, '--state-dir', system.stateDir, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('ready')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`obscura proxy exited ${code}`)));
      });
      const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'local', maxRetries: 0 });
      const r = await client.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: `the sea ${CANARY}` }], max_tokens: 5 });
      expect(r.choices[0].message.content?.length).toBeGreaterThan(0);
    } finally {
      child.kill('SIGINT');
    }
  });
});

describe('the edge', () => {
  it('refuses a plain OpenAI body with a JSON error that says what to use', async () => {
    const agent = new Agent({ connect: { ca: system.caPem } });
    const res = await request(`${system.edgeUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sample-ngram', messages: [{ role: 'user', content: 'hi' }] }),
      dispatcher: agent,
    });
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    await agent.close();
    expect(res.statusCode).toBe(415);
    expect(body.error.code).toBe('ERR_PLAINTEXT_REFUSED');
    expect(body.error.message).toMatch(/SDK|client proxy/);
  });
});

describe('sealed requests replayed or changed on the wire', () => {
  async function capturedInference() {
    const ex = clientToEdge.exchanges.find((e) => e.path === '/v1/inference' && e.status === 200);
    expect(ex).toBeDefined();
    const raw = ex!.request;
    // The recorded request is "METHOD path\nheaders-json\nbody".
    const firstNl = raw.indexOf(10);
    const secondNl = raw.indexOf(10, firstNl + 1);
    return raw.subarray(secondNl + 1);
  }

  async function postToEdge(body: Uint8Array) {
    const agent = new Agent({ connect: { ca: system.caPem } });
    const res = await request(`${system.edgeUrl}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': 'application/obscura-sealed-request+cbor' },
      body,
      dispatcher: agent,
    });
    const json = (await res.body.json()) as { error: { code: string; message: string } };
    await agent.close();
    return { status: res.statusCode, code: json.error?.code };
  }

  it('refuses a replayed request at the worker', async () => {
    expect(await postToEdge(await capturedInference())).toEqual({ status: 409, code: 'ERR_REPLAY' });
  });

  it('refuses a request with a flipped ciphertext byte', async () => {
    const envelope = decodeStrict<Record<string, Uint8Array>>(new Uint8Array(await capturedInference()), 'captured');
    envelope.ct[envelope.ct.length - 20] ^= 0x01;
    expect(await postToEdge(encodeDeterministic(envelope))).toEqual({ status: 400, code: 'ERR_OPEN_FAILED' });
  });
});

describe('streams tampered with on the way back', () => {
  /** An SDK client whose network rewrites the sealed response bytes. */
  function tamperingClient(tamper: (frames: Buffer[]) => Buffer[]) {
    const agent = new Agent({ connect: { ca: system.caPem } });
    const policy = parseClientPolicy(JSON.parse(readFileSync(join(system.stateDir, 'client-policy.json'), 'utf8')));
    const net = (async (url: string, init?: RequestInit) => {
      const res = await undiciFetch(url, { ...(init as object), dispatcher: agent });
      if (!url.endsWith('/v1/inference') || res.status !== 200) return res;
      const bytes = Buffer.from(await res.arrayBuffer());
      const frames: Buffer[] = [];
      for (let i = 0; i < bytes.length; ) {
        const len = bytes.readUInt32BE(i);
        frames.push(bytes.subarray(i, i + 9 + len));
        i += 9 + len;
      }
      return new Response(Buffer.concat(tamper(frames)), { status: 200, headers: res.headers as unknown as HeadersInit });
    }) as unknown as typeof fetch;
    return new OpenAI({ baseURL: 'http://sdk.local/v1', apiKey: 'local', maxRetries: 0, fetch: createObscuraFetch({ endpoint: system.edgeUrl, policy, fetch: net }) });
  }

  async function streamError(client: OpenAI): Promise<unknown> {
    try {
      const stream = await client.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'the sea' }], max_tokens: 6, stream: true });
      for await (const _ of stream) void _;
    } catch (e) {
      return e;
    }
    return undefined;
  }

  const codeOf = (e: unknown): string | undefined => (e instanceof ObscuraError ? e.code : (e as { cause?: unknown })?.cause instanceof ObscuraError ? ((e as { cause: ObscuraError }).cause.code) : undefined);

  it('a clean stream through the SDK works', async () => {
    expect(await streamError(tamperingClient((f) => f))).toBeUndefined();
  });

  it('reordered events end in ERR_STREAM_REORDERED', async () => {
    const e = await streamError(tamperingClient((f) => [f[0], f[2], f[1], ...f.slice(3)]));
    expect(codeOf(e)).toBe('ERR_STREAM_REORDERED');
  });

  it('a truncated stream (no authenticated end) ends in ERR_STREAM_TRUNCATED', async () => {
    const e = await streamError(tamperingClient((f) => f.slice(0, -1)));
    expect(codeOf(e)).toBe('ERR_STREAM_TRUNCATED');
  });

  it('a flipped byte ends in ERR_OPEN_FAILED', async () => {
    const e = await streamError(
      tamperingClient((f) => {
        const g = Buffer.from(f[2]);
        g[12] ^= 0x40;
        return [f[0], f[1], g, ...f.slice(3)];
      }),
    );
    expect(codeOf(e)).toBe('ERR_OPEN_FAILED');
  });
});

describe('plaintext never leaves the client or the worker', () => {
  it('the canary is in no byte the edge received or sent, nor between edge and worker', () => {
    expect(clientToEdge.exchanges.length).toBeGreaterThan(5);
    expect(edgeToWorker.exchanges.length).toBeGreaterThan(3);
    expect(clientToEdge.allBytes().includes(Buffer.from(CANARY))).toBe(false);
    expect(edgeToWorker.allBytes().includes(Buffer.from(CANARY))).toBe(false);
    // The recorded traffic is real: the sealed requests did pass through the relays.
    expect(clientToEdge.allBytes().includes(Buffer.from('application/obscura-sealed-request+cbor'))).toBe(true);
  });

  it('the canary is in no log and no file written under the state dir or the project', () => {
    const written = [
      ...filesWrittenSince(system.stateDir, startedAt),
      ...filesWrittenSince(PROJECT_ROOT, startedAt, ['node_modules', '.git']),
      ...filesWrittenSince(join(PROJECT_ROOT, 'node_modules', '.vite'), startedAt),
      ...filesWrittenSince(WRANGLER_HOME_LOGS, startedAt),
    ];
    // The parts did write logs during the run, so the scan looked at real output.
    expect(written.some((p) => p.endsWith('worker.log'))).toBe(true);
    expect(written.some((p) => p.endsWith('attestation-service.log'))).toBe(true);
    expect(filesContaining(written, CANARY)).toEqual([]);
    expect(system.output().includes(CANARY)).toBe(false);
  });
});
