/**
 * Faults of whole parts on the real system (`obscura up`):
 *  - two workers: the edge spreads requests over both in turn; one killed: requests through the
 *    official `openai` client keep succeeding through the other (the edge fails over before the first
 *    byte), and `up` keeps running;
 *  - the attestation service killed (SIGKILL) and restarted by `up --restart on-failure`: its manifest
 *    chain head, workers and secrets survive; a client that already held a secret continues, a new one
 *    gets in after the SDK's retry; a worker restarted afterwards gets the old secret from the service.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../shared/bytes.ts';
import { createObscuraFetch, type ObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { alive, startSystem, type RunningSystem } from './harness.ts';

const MODEL = 'sample-ngram';
const messages = [{ role: 'user' as const, content: 'Tell me about the sea' }];

function events(system: RunningSystem, log: string): { event: string; outcome?: string; origin?: string; workers?: number; secrets?: number; manifestEntries?: number }[] {
  return readFileSync(join(system.stateDir, 'logs', log), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

const served = (system: RunningSystem, log: string) => events(system, log).filter((e) => e.event === 'inference' && e.outcome === 'ok').length;

async function until(what: string, ok: () => boolean, tries = 600): Promise<void> {
  for (let i = 0; i < tries && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

function pidOf(system: RunningSystem, part: string): number {
  const p = system.parts()?.parts.find((x) => x.name === part);
  if (!p?.alive) throw new Error(`${part} is not running`);
  return p.pid;
}

/** SIGKILL a part's whole process group, as a crash of its machine would end it. */
function crash(pid: number): void {
  process.kill(-pid, 'SIGKILL');
}

/** The Obscura error code behind an `openai` error: in the answer, or thrown by the SDK's fetch. */
function codeOf(e: unknown): string | undefined {
  if (e instanceof OpenAI.APIConnectionError) return (e.cause as { code?: string } | undefined)?.code;
  if (e instanceof OpenAI.APIError) return typeof e.code === 'string' ? e.code : undefined;
  return undefined;
}

/**
 * A client's retry: again, up to twice, when the edge could not reach the part behind it
 * (ERR_UPSTREAM). After a part restarts, the edge's first call can still go out on a kept-alive
 * connection to the old process (workerd does not notice it closed) and fail; the next one connects.
 */
async function retryingOnUpstream<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 2 || codeOf(e) !== 'ERR_UPSTREAM') throw e;
    }
  }
}

async function streamed(openai: OpenAI): Promise<string> {
  const stream = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 16, stream: true });
  let text = '';
  let finished = false;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.choices[0]?.finish_reason) finished = true;
  }
  expect(finished).toBe(true);
  return text;
}

describe('two workers, one down', () => {
  let system: RunningSystem;
  let openai: OpenAI;

  beforeAll(async () => {
    system = await startSystem({ workers: 2 });
    openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  });

  afterAll(async () => {
    expect(await system?.stop()).toBe(0);
  });

  it('both workers are attested and in the edge\'s routing table; they take the traffic in turn', async () => {
    expect(system.output()).toMatch(/\] worker on https:\/\/127\.0\.0\.1:\d+ \(AI code "sample-ngram" under gVisor, attested\)/);
    expect(system.output()).toMatch(/\] worker-2 on https:\/\/127\.0\.0\.1:\d+ \(AI code "sample-ngram" under gVisor, attested\)/);
    const agent = new Agent({ connect: { ca: system.caPem } });
    const health = (await (await undiciFetch(`${system.edgeUrl}/healthz`, { dispatcher: agent })).json()) as { regions: string[] };
    await agent.close();
    expect(health.regions).toEqual(['local', 'local-2']);
    for (let i = 0; i < 4; i++) {
      const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
      expect(r.choices[0].message.content?.length).toBeGreaterThan(0);
    }
    // A worker logs an answer once it is sent, so the line can trail the client's last byte.
    await until('both workers to log their answers', () => served(system, 'worker.log') + served(system, 'worker-2.log') >= 4);
    expect(served(system, 'worker.log')).toBe(2);
    expect(served(system, 'worker-2.log')).toBe(2);
  });

  it('the first worker killed: requests keep succeeding through the second, and up keeps running', async () => {
    const pid = pidOf(system, 'worker');
    crash(pid);
    await until('up to see the worker exit', () => /worker exited unexpectedly \(signal SIGKILL\); see .*worker\.log; 1 of 2 workers still serving/.test(system.output()));
    expect(alive([pid])).toEqual([]);
    expect(system.parts()?.parts.find((p) => p.name === 'worker')?.alive).toBe(false);

    const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
    expect(r.choices[0].message.content?.length).toBeGreaterThan(0);
    expect((await streamed(openai)).length).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
    await until('the second worker to log its answers', () => served(system, 'worker-2.log') >= 7);
    expect(served(system, 'worker-2.log')).toBe(7);
    expect(served(system, 'worker.log')).toBe(2);
    expect(system.output()).not.toMatch(/\] stopping/);
  }, 90_000);
});

describe('the attestation service restarted under a running system', () => {
  let system: RunningSystem;
  let agent: Agent;
  let policy: ReturnType<typeof parseClientPolicy>;
  const viaAgent = ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  const sdkClient = (): { fetch: ObscuraFetch; openai: OpenAI } => {
    const f = createObscuraFetch({ endpoint: system.edgeUrl, policy, fetch: viaAgent });
    return { fetch: f, openai: new OpenAI({ baseURL: `${system.edgeUrl}/v1`, apiKey: 'local', fetch: f, maxRetries: 0 }) };
  };
  const asJson = async (path: string) => (await undiciFetch(`${system.asUrl}${path}`, { dispatcher: agent })).json() as Promise<Record<string, unknown>>;

  beforeAll(async () => {
    system = await startSystem({ args: ['--restart', 'on-failure'] });
    agent = new Agent({ connect: { ca: system.caPem } });
    policy = parseClientPolicy(JSON.parse(readFileSync(join(system.stateDir, 'client-policy.json'), 'utf8')));
  });

  afterAll(async () => {
    await agent?.close();
    expect(await system?.stop()).toBe(0);
  });

  it('chain head, workers and secrets survive a SIGKILL; clients continue', async () => {
    const early = sdkClient();
    expect((await streamed(early.openai)).length).toBeGreaterThan(0);
    const sid = toHex((await early.fetch.session.secret()).sid);
    const proxied = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
    await proxied.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
    const before = { manifest: await asJson('/v1/manifest'), workers: await asJson('/v1/workers') };

    const asPid = pidOf(system, 'attestation service');
    crash(asPid);
    await until('up to restart the attestation service', () => /\] attestation service restarted on /.test(system.output()));
    expect(system.output()).toMatch(/attestation service exited unexpectedly \(signal SIGKILL\); restarting it/);
    expect(pidOf(system, 'attestation service')).not.toBe(asPid);
    expect(system.parts()?.parts.find((p) => p.name === 'attestation service')?.restarts).toBe(1);

    const after = { manifest: await asJson('/v1/manifest'), workers: await asJson('/v1/workers') };
    expect(after.manifest.head).toBe(before.manifest.head);
    expect(after.manifest.chain).toEqual(before.manifest.chain);
    expect(after.workers).toEqual(before.workers);
    const restored = events(system, 'attestation-service.log').filter((e) => e.event === 'state-opened');
    expect(restored.at(-1)).toMatchObject({ origin: 'restored', manifestEntries: 1, workers: 1 });
    expect(restored.at(-1)!.secrets).toBeGreaterThanOrEqual(2); // the SDK client's and the client proxy's

    // Clients that held a secret continue as they were (no new exchange); a new one gets in after
    // the SDK's retry with a bundle made for it (the service's new evidence is not the edge's cached one).
    expect((await streamed(early.openai)).length).toBeGreaterThan(0);
    expect(toHex((await early.fetch.session.secret()).sid)).toBe(sid);
    await proxied.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
    const late = sdkClient();
    expect((await retryingOnUpstream(() => streamed(late.openai))).length).toBeGreaterThan(0);

    // The secret itself survived: a worker restarted now holds no secret and gets it from the
    // restarted service (an unknown one would make the SDK exchange a new one, changing the id).
    const workerPid = pidOf(system, 'worker');
    crash(workerPid);
    await until('up to restart the worker', () => /\] worker restarted on /.test(system.output()));
    expect((await retryingOnUpstream(() => streamed(early.openai))).length).toBeGreaterThan(0);
    expect(toHex((await early.fetch.session.secret()).sid)).toBe(sid);
    expect(system.output()).not.toMatch(/\] stopping/);
  }, 90_000);
});
