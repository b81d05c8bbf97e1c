/**
 * The request paths the bench compares, on a system started by test/e2e/harness.ts:
 *  - direct:  HTTP over the AI code's unix socket (what the encryption proxy itself talks to)
 *  - worker:  the SDK's sealed request POSTed straight to the worker's /v1/inference (attestation and
 *             secrets still through the edge), so only the encryption proxy is added
 *  - full:    SDK → edge (workerd) → worker
 *  - proxy:   the `openai` package → client proxy (in the `obscura up` process) → edge → worker
 */
import { setMaxListeners } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, Client, Pool, fetch as undiciFetch, type Dispatcher } from 'undici';
import { createObscuraFetch, type ObscuraFetch } from '../../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy, type ClientPolicy } from '../../../client/sdk/policy.ts';
import type { RunningSystem } from '../../e2e/harness.ts';

export const MODEL = 'sample-ngram';
export const PROMPT = 'Tell me about the white whale and the sea';

export function chatBody(maxTokens: number, stream: boolean): Record<string, unknown> {
  return { model: MODEL, messages: [{ role: 'user', content: PROMPT }], max_tokens: maxTokens, ...(stream ? { stream: true } : {}) };
}

/**
 * The AI code's socket: `<stateDir>/worker/channels/aicode-<name>/ai.sock` when the worker runs as root
 * (its channel is a tmpfs mounted there), else under /dev/shm (`obscura-<worker pid>-aicode-<name>`).
 * A channel directory whose name merely starts with `aicode-<name>` (a more unique container id) is
 * found too.
 */
export function aiSocketPath(stateDir: string, aiCode = MODEL, workerPids: readonly number[] = []): string {
  const channels = join(stateDir, 'worker', 'channels');
  const exact = join(channels, `aicode-${aiCode}`, 'ai.sock');
  if (existsSync(exact)) return exact;
  const candidates = [
    ...(existsSync(channels) ? readdirSync(channels).filter((d) => d.startsWith(`aicode-${aiCode}`)).map((d) => join(channels, d, 'ai.sock')) : []),
    ...readdirSync('/dev/shm')
      .filter((d) => workerPids.some((pid) => d.startsWith(`obscura-${pid}-aicode-${aiCode}`)))
      .map((d) => join('/dev/shm', d, 'ai.sock')),
  ].filter((p) => existsSync(p));
  return candidates[0] ?? exact;
}

export function clientPolicy(stateDir: string): ClientPolicy {
  return parseClientPolicy(JSON.parse(readFileSync(join(stateDir, 'client-policy.json'), 'utf8')));
}

/** Counts the streamed content tokens of an OpenAI SSE body (one `delta.content` event = one token). */
export class SseTokenCounter {
  private pending = '';
  private readonly decoder = new TextDecoder();
  tokens = 0;
  done = false;
  push(chunk: Uint8Array): void {
    this.pending += this.decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = this.pending.indexOf('\n\n')) >= 0) {
      const ev = this.pending.slice(0, i);
      this.pending = this.pending.slice(i + 2);
      if (ev.includes('"delta":{"content":')) this.tokens++;
      else if (ev.startsWith('data: [DONE]')) this.done = true;
    }
  }
}

export interface Paths {
  agent: Agent;
  direct: Client; // one keep-alive connection to the AI code's socket
  directPool: Pool; // up to 64 connections, for concurrent runs
  worker: ObscuraFetch; // SDK → worker
  full: ObscuraFetch; // SDK → edge → worker
  openai: OpenAI; // openai → client proxy → edge → worker
  close(): Promise<void>;
}

export function openPaths(system: RunningSystem): Paths {
  const agent = new Agent({ connect: { ca: system.caPem }, keepAliveTimeout: 30_000, connections: 64 });
  const socketPath = aiSocketPath(system.stateDir, MODEL, system.processes ?? []);
  const policy = clientPolicy(system.stateDir);
  const viaAgent = (url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>;
  const edgeInference = `${system.edgeUrl}/v1/inference`;
  const worker = createObscuraFetch({
    endpoint: system.edgeUrl,
    policy,
    // Attestation and secrets through the edge as usual; only /v1/inference goes straight to the worker.
    fetch: ((url: string, init?: RequestInit) => viaAgent(url === edgeInference ? `${system.workerUrl}/v1/inference` : url, init)) as unknown as typeof fetch,
  });
  const full = createObscuraFetch({ endpoint: system.edgeUrl, policy, fetch: viaAgent as unknown as typeof fetch });
  const direct = new Client('http://ai-code', { socketPath, keepAliveTimeout: 30_000 });
  const directPool = new Pool('http://ai-code', { socketPath, connections: 64, keepAliveTimeout: 30_000 });
  const openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0, timeout: 120_000 });
  return {
    agent,
    direct,
    directPool,
    worker,
    full,
    openai,
    async close() {
      await Promise.allSettled([agent.close(), direct.close(), directPool.close()]);
    },
  };
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** A non-streamed completion straight to the AI code; checks it produced `maxTokens` tokens. */
export async function directChat(d: Dispatcher, maxTokens: number): Promise<void> {
  const res = await d.request({ path: '/v1/chat/completions', method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(chatBody(maxTokens, false)) });
  const json = (await res.body.json()) as { usage?: { completion_tokens?: number } };
  if (res.statusCode !== 200 || json.usage?.completion_tokens !== maxTokens) throw new Error(`direct: status ${res.statusCode}, ${JSON.stringify(json).slice(0, 200)}`);
}

/** A non-streamed completion through the SDK (worker or full path). */
export async function sdkChat(f: ObscuraFetch, maxTokens: number): Promise<void> {
  const res = await f('http://obscura.local/v1/chat/completions', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(chatBody(maxTokens, false)) });
  const json = (await res.json()) as { usage?: { completion_tokens?: number } };
  if (res.status !== 200 || json.usage?.completion_tokens !== maxTokens) throw new Error(`sdk: status ${res.status}, ${JSON.stringify(json).slice(0, 200)}`);
}

/** A non-streamed completion with the `openai` package through the client proxy. */
export async function openaiChat(o: OpenAI, maxTokens: number): Promise<void> {
  const r = await o.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: PROMPT }], max_tokens: maxTokens });
  if (r.usage?.completion_tokens !== maxTokens) throw new Error(`openai: ${JSON.stringify(r).slice(0, 200)}`);
}

/** A streamed completion straight to the AI code: its SSE body. */
export async function directStreamBody(d: Dispatcher, maxTokens: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  const res = await d.request({ path: '/v1/chat/completions', method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(chatBody(maxTokens, true)), signal });
  if (res.statusCode !== 200) throw new Error(`direct stream: status ${res.statusCode} ${(await res.body.text().catch(() => '')).slice(0, 200)}`);
  return res.body as AsyncIterable<Uint8Array>;
}

/** A streamed completion through the SDK: its opened (authenticated) SSE body. */
export async function sdkStreamBody(f: ObscuraFetch, maxTokens: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  const res = await f('http://obscura.local/v1/chat/completions', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(chatBody(maxTokens, true)), signal });
  if (res.status !== 200 || !res.body) throw new Error(`sdk stream: status ${res.status} ${(await res.text().catch(() => '')).slice(0, 200)}`);
  const reader = res.body.getReader();
  return (async function* () {
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      reader.releaseLock();
    }
  })();
}

export interface StreamRound {
  tokens: number; // content tokens received (by the cap, when capped)
  wallMs: number; // first stream started → last stream ended (or the cap)
  decodeMs: number; // first token of any stream → last token of any stream
  tokensPerS: number; // tokens / wall
  decodeTokensPerS: number; // tokens / decode window: the streaming rate, without the time to first token
  ttftMs: number[]; // time to first content token, per stream
  completed: number;
  capped: boolean; // the cap was reached and the streams still open were cancelled
  errors: string[];
}

/**
 * `streams` streamed completions started together, each read to its end. A path that cannot keep up
 * (e.g. one that queues streams) is cut at `capMs`: the streams still open are cancelled and the rate
 * is what arrived by then.
 */
export async function streamRound(streams: number, capMs: number, open: (signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>): Promise<StreamRound> {
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // one signal for all the round's streams
  const t0 = performance.now();
  let first = Infinity;
  let last = 0;
  const out: StreamRound = { tokens: 0, wallMs: 0, decodeMs: 0, tokensPerS: 0, decodeTokensPerS: 0, ttftMs: [], completed: 0, capped: false, errors: [] };
  const one = async () => {
    const counter = new SseTokenCounter();
    try {
      for await (const chunk of await open(ac.signal)) {
        const before = counter.tokens;
        counter.push(chunk);
        if (counter.tokens > before) {
          const now = performance.now();
          out.tokens += counter.tokens - before;
          if (before === 0) out.ttftMs.push(now - t0);
          first = Math.min(first, now);
          last = Math.max(last, now);
        }
      }
      if (!counter.done) throw new Error('the stream ended without [DONE]');
      out.completed++;
    } catch (e) {
      if (!ac.signal.aborted) out.errors.push(String((e as Error)?.message ?? e).slice(0, 300));
    }
  };
  const timer = setTimeout(() => {
    out.capped = true;
    ac.abort();
  }, capMs);
  await Promise.all(Array.from({ length: streams }, one));
  clearTimeout(timer);
  out.wallMs = out.capped ? capMs : performance.now() - t0;
  out.decodeMs = out.capped ? t0 + capMs - first : last - first;
  out.tokensPerS = (out.tokens / out.wallMs) * 1000;
  out.decodeTokensPerS = out.decodeMs > 0 ? (out.tokens / out.decodeMs) * 1000 : 0;
  return out;
}
