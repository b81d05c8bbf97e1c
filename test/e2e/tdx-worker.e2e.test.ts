/**
 * The local deployment with its worker on the simulated TDX machine (`OBSCURA_WORKER_TEE=tdx`, the
 * worker's `--tee tdx`): the local manifest lists the machine's TDX root and the reference measurement
 * as MRTD, so the worker is admitted on its TD quote and serves a sealed completion end to end.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSystem, type RunningSystem } from './harness.ts';

let system: RunningSystem;

beforeAll(async () => {
  system = await startSystem({ env: { OBSCURA_WORKER_TEE: 'tdx' } });
});

afterAll(async () => {
  expect(await system?.stop()).toBe(0);
});

const events = (file: string) =>
  readFileSync(join(system.stateDir, 'logs', file), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; tee?: string; workerId?: string });

it('admits the worker on its TDX evidence and serves a completion through it', async () => {
  const registered = events('worker.log').filter((e) => e.event === 'registered');
  expect(registered.length).toBeGreaterThan(0);
  expect(registered.every((e) => e.tee === 'tdx')).toBe(true);
  expect(events('attestation-service.log').some((e) => e.event === 'worker-admitted' && e.workerId === registered[0].workerId)).toBe(true);
  const openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  const r = await openai.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'Tell me about the sea' }], max_tokens: 16 });
  expect(r.choices[0].message.content?.length).toBeGreaterThan(0);
  expect(events('worker.log').some((e) => e.event === 'inference')).toBe(true);
});
