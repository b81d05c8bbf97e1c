/**
 * The manifest's life cycle in the running system: `obscura manifest update` makes the worker
 * re-attest (it registers again when the service says it is no longer attested), a client holding a
 * secret from before an update that admits nothing new lets it follow, and requests keep succeeding; then `obscura up`
 * again on the same state directory keeps the sealed state (same chain, no new first manifest, the
 * same encrypted weights and model key).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { createObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { startSystem, type RunningSystem } from './harness.ts';

let system: RunningSystem | undefined;

beforeAll(async () => {
  system = await startSystem();
});

afterAll(async () => {
  if (system) expect(await system.stop()).toBe(0);
});

const events = (file: string) =>
  readFileSync(join(system!.stateDir, 'logs', file), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; reason?: string; origin?: string });

async function chat(client: OpenAI): Promise<string> {
  const r = await client.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'Tell me about the sea' }], max_tokens: 6 });
  return r.choices[0].message.content ?? '';
}

/** An SDK client of its own (its own session and manifest log), straight to the edge. */
function freshClient(): OpenAI {
  const agent = new Agent({ connect: { ca: system!.caPem } });
  const policy = parseClientPolicy(JSON.parse(readFileSync(join(system!.stateDir, 'client-policy.json'), 'utf8')));
  const net = ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  return new OpenAI({ baseURL: 'http://sdk.local/v1', apiKey: 'local', maxRetries: 0, fetch: createObscuraFetch({ endpoint: system!.edgeUrl, policy, fetch: net }) });
}

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'obscura.mjs'), ...args, '--state-dir', system!.stateDir, '--as', system!.asUrl], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

it('after `obscura manifest update`, requests still succeed: the worker re-registered', async () => {
  const proxied = new OpenAI({ baseURL: system!.proxyUrl, apiKey: 'local', maxRetries: 0 });
  expect((await chat(proxied)).length).toBeGreaterThan(0);
  // The worker's weights are encrypted at rest; their key reached it from the service only.
  expect(system!.output()).toMatch(/model sample-ngram\.json encrypted at rest/);
  expect(events('attestation-service.log').some((e) => e.event === 'model-key-released')).toBe(true);

  const shown = await cli('manifest', 'show', '--json');
  expect(shown.code).toBe(0);
  const current = JSON.parse(shown.out) as { seq: number; manifest: { limits: { replayWindowMs: number } } };
  expect(current.seq).toBe(0);
  const file = join(system!.stateDir, 'manifest-next.json');
  writeFileSync(file, JSON.stringify({ ...current.manifest, limits: { ...current.manifest.limits, replayWindowMs: 240_000 } }));
  const updated = await cli('manifest', 'update', '--file', file, '--key', join(system!.stateDir, 'owner-key.jwk'));
  expect(updated.code, updated.err).toBe(0);

  // A new client: its secret is sealed under the new head, and the worker must re-attest to get it.
  expect((await chat(freshClient())).length).toBeGreaterThan(0);
  expect(events('worker.log').some((e) => e.event === 'registered' && e.reason === 'manifest-changed')).toBe(true);
  // The proxy's secret predates the update, which admits nothing new (a shorter replay window): the
  // proxy's SDK allows its secret to follow it, and the re-attested worker then gets it.
  const accepted = () => events('attestation-service.log').filter((e) => e.event === 'secret-accepted').length;
  const acceptedBefore = accepted();
  expect((await chat(proxied)).length).toBeGreaterThan(0);
  expect(events('attestation-service.log').some((e) => e.event === 'secret-allowed')).toBe(true);
  expect(accepted()).toBe(acceptedBefore);
  expect(events('attestation-service.log').filter((e) => e.event === 'worker-admitted').length).toBeGreaterThanOrEqual(2);
}, 60_000);

it('`obscura up` again on the same state directory keeps the sealed chain', async () => {
  expect(await system!.stop()).toBe(0);
  const stateDir = system!.stateDir;
  system = undefined;
  system = await startSystem({ stateDir });
  expect(system.output()).toMatch(/manifest entry 1 kept/);
  expect(system.output()).not.toMatch(/trust on first use/);
  expect(system.output()).not.toMatch(/encrypted at rest/); // the sealed weights and their key were kept
  const proxied = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  expect((await chat(proxied)).length).toBeGreaterThan(0);
  expect(events('attestation-service.log').some((e) => e.event === 'state-opened' && e.origin === 'restored')).toBe(true);
}, 120_000);
