/**
 * The worker end to end, in a system started as `npm start` starts it (paced at 200 tokens/s): the
 * OpenAI adapter with the official `openai` client, the Triton generate adapter with Triton-shaped
 * requests through the SDK's fetch, errors of the AI code sealed, a client's disconnect reaching the
 * worker, and the owner-signed worker API through `obscura worker ... --worker URL`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { workerCommand } from '../../client/cli/commands/worker.ts';
import { decodeStrict } from '../../shared/cbor.ts';
import { DEFAULT_PADDING_BUCKETS_BYTES } from '../../shared/protocol/padding.ts';
import { filesContaining, filesWrittenSince, RecordingRelay, startSystem, type RunningSystem } from '../e2e/harness.ts';
import { frameSizes, SAMPLE, sseData, until } from './helpers.ts';

const startedAt = Date.now();
const CANARY = `canary-${randomBytes(12).toString('hex')}`;
const PADDED = new Set(DEFAULT_PADDING_BUCKETS_BYTES.map((b) => b + 16));
const clientToEdge = new RecordingRelay();
let system: RunningSystem;
let agent: Agent;
let viaRelay: typeof fetch; // the SDK's fetch, through the recording relay
let direct: typeof fetch; // the SDK's fetch, straight to the edge

beforeAll(async () => {
  system = await startSystem({ relays: { clientToEdge }, args: ['--tokens-per-second', '200'] });
  agent = new Agent({ connect: { ca: system.caPem } });
  const policy = parseClientPolicy(JSON.parse(readFileSync(join(system.stateDir, 'client-policy.json'), 'utf8')));
  const net = ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  viaRelay = createObscuraFetch({ endpoint: clientToEdge.url, policy, fetch: net });
  direct = createObscuraFetch({ endpoint: system.edgeUrl, policy, fetch: net });
});

afterAll(async () => {
  await agent?.close();
  expect(await system?.stop('SIGINT')).toBe(0);
});

const workerLog = () =>
  readFileSync(join(system.stateDir, 'logs', 'worker.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The last sealed exchange the relay saw: the envelope's header, the wire status, the frame sizes. */
function lastExchange() {
  const ex = [...clientToEdge.exchanges].reverse().find((e) => e.path === '/v1/inference')!;
  const afterTwoLines = (b: Buffer) => b.subarray(b.indexOf(10, b.indexOf(10) + 1) + 1);
  const envelope = decodeStrict<Record<string, unknown>>(new Uint8Array(afterTwoLines(ex.request)), 'envelope');
  return { envelope, status: ex.status, frames: frameSizes(afterTwoLines(ex.response)) };
}

const triton = (f: typeof fetch, path: string, body: unknown, signal?: AbortSignal) =>
  f(`http://triton.local${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

describe('the OpenAI adapter: the official openai client', () => {
  it('completes and streams a chat, sealed', async () => {
    const openai = new OpenAI({ baseURL: 'http://sdk.local/v1', apiKey: 'local', maxRetries: 0, fetch: viaRelay });
    const r = await openai.chat.completions.create({ model: SAMPLE, messages: [{ role: 'user', content: `the white rabbit ${CANARY}` }], max_tokens: 6 });
    expect(r.usage?.completion_tokens).toBe(6);
    const stream = await openai.chat.completions.create({ model: SAMPLE, messages: [{ role: 'user', content: `the sea ${CANARY}` }], max_tokens: 8, stream: true });
    let chunks = 0;
    for await (const c of stream) if (c.choices[0]?.delta?.content) chunks++;
    expect(chunks).toBe(8);
    for (const s of lastExchange().frames) expect(PADDED.has(s)).toBe(true);
  });

  it('an AI code error reaches the client with its status, which only the sealed head carried', async () => {
    const openai = new OpenAI({ baseURL: 'http://sdk.local/v1', apiKey: 'local', maxRetries: 0, fetch: viaRelay });
    const e = await openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(lastExchange().status).toBe(200);
  });
});

describe('the Triton generate adapter: Triton-shaped requests through the SDK', () => {
  it('generate', async () => {
    const res = await triton(viaRelay, `/v2/models/${SAMPLE}/generate`, { id: 'q1', text_input: `It was the best of times ${CANARY}`, parameters: { max_tokens: 10, temperature: 0.2 } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ id: 'q1', model_name: SAMPLE, model_version: '1', text_output: expect.any(String) });
    const { envelope } = lastExchange();
    expect(envelope.path).toBe(`/v2/models/${SAMPLE}/generate`);
    expect(envelope.routing).toEqual({ model: SAMPLE, max_tokens: 10 });
  });

  it('generate_stream: SSE events, one sealed padded frame each', async () => {
    const res = await triton(viaRelay, `/v2/models/${SAMPLE}/versions/1/generate_stream`, { text_input: `Call me Ishmael ${CANARY}`, parameters: { max_tokens: 12, stream: true } });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseData(await res.text());
    expect(events).toHaveLength(12);
    for (const e of events) expect(e).toEqual({ model_name: SAMPLE, model_version: '1', text_output: expect.any(String) });
    const { envelope, frames } = lastExchange();
    expect(envelope.routing).toEqual({ model: SAMPLE, max_tokens: 12, stream: true });
    expect(frames).toHaveLength(14);
    for (const s of frames) expect(PADDED.has(s)).toBe(true);
  });

  it('an AI code error that quotes the request is sealed: the client sees 400 and the message, the network neither', async () => {
    const res = await triton(viaRelay, `/v2/models/${SAMPLE}/generate`, { text_input: 'the sea', parameters: { temperature: CANARY } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain(CANARY);
    expect(lastExchange().status).toBe(200);
  });

  it('the canary is in no byte between client and edge, and in no file written', () => {
    expect(clientToEdge.allBytes().includes(Buffer.from(CANARY))).toBe(false);
    expect(clientToEdge.allBytes().includes(Buffer.from('text_input'))).toBe(false);
    expect(filesContaining(filesWrittenSince(system.stateDir, startedAt), CANARY)).toEqual([]);
    expect(system.output().includes(CANARY)).toBe(false);
  });
});

describe('cancellation', () => {
  it('a client that goes away mid-stream cancels the request to the AI code', async () => {
    const abort = new AbortController();
    const sent = Date.now();
    // 2000 tokens at 200 tokens/s: 10 s if it ran to the end.
    const res = await triton(direct, `/v2/models/${SAMPLE}/generate_stream`, { text_input: 'the sea', parameters: { max_tokens: 2000 } }, abort.signal);
    const reader = res.body!.getReader();
    let events = 0;
    while (events < 3) {
      const { value } = await reader.read();
      events += (new TextDecoder().decode(value).match(/data:/g) ?? []).length;
    }
    abort.abort();
    const line = await until(() => workerLog().find((l) => l.event === 'inference' && l.path === `/v2/models/${SAMPLE}/generate_stream`), 'the worker to log the stream', 9_000);
    expect(Date.now() - sent).toBeLessThan(9_000); // well before the stream would have ended
    expect(Number(line.frames)).toBeLessThan(1_000);
    expect(line.outcome).toBe('cancelled');
  });
});

describe('the worker API through `obscura worker --worker URL` (owner-signed)', () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await workerCommand
      .run([...args, '--worker', system.workerUrl, '--key', join(system.stateDir, 'owner-key.jwk'), '--as', system.asUrl, '--state-dir', system.stateDir, '--json'], { out: (l) => out.push(l), err: (l) => err.push(l) })
      .catch((e) => {
        err.push(String(e?.code ?? e), String(e?.message ?? ''));
        return -1;
      });
    return { code, out, err };
  }

  it('refuses unsigned requests', async () => {
    const res = await request(`${system.workerUrl}/agent/v1/ai-code`, { dispatcher: agent });
    expect(res.statusCode).toBe(403);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('ERR_SIGNATURE_INVALID');
  });

  it('lists and inspects', async () => {
    const list = await cli('list');
    expect(list.code).toBe(0);
    const body = JSON.parse(list.out[0]);
    expect(body.aiCode).toEqual([expect.objectContaining({ name: SAMPLE, state: 'running', allowed: true, imageKind: 'directory' })]);
    const one = await cli('inspect', SAMPLE);
    expect(JSON.parse(one.out[0]).aiCode.name).toBe(SAMPLE);
  });

  it('stops the AI code (inference fails), then starts it again (inference works)', async () => {
    const stopped = await cli('stop', SAMPLE);
    expect(stopped.err).toEqual([]);
    expect(JSON.parse(stopped.out[0]).aiCode.state).toBe('stopped');
    const down = await triton(direct, `/v2/models/${SAMPLE}/generate`, { text_input: 'the sea', parameters: { max_tokens: 3 } });
    expect(down.status).toBe(503);
    await down.body?.cancel();
    const started = await cli('start', SAMPLE);
    expect(started.err).toEqual([]);
    expect(JSON.parse(started.out[0]).aiCode.state).toBe('running');
    const up = await triton(direct, `/v2/models/${SAMPLE}/generate`, { text_input: 'the sea', parameters: { max_tokens: 3 } });
    expect(up.status).toBe(200);
    const actions = workerLog().filter((l) => l.event === 'agent-request' && l.outcome === 'ok').map((l) => l.action);
    expect(actions).toEqual(expect.arrayContaining(['list', 'inspect', 'stop', 'start']));
  }, 60_000);

  it('refuses AI code this worker does not run', async () => {
    const r = await cli('start', 'not-on-this-worker');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('ERR_USAGE'); // the worker's 404
  });
});
