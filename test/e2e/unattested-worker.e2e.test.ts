/**
 * A worker whose launch measurement the manifest does not allow: its configuration differs from the
 * reference (the padding buckets are measured), so the attestation service refuses it, it never gets
 * a secret, and the client gets a clear error instead of an answer.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { alive, startSystem, type RunningSystem } from './harness.ts';

let system: RunningSystem;

beforeAll(async () => {
  system = await startSystem({ args: ['--padding-buckets', '512,8192'] });
});

afterAll(async () => {
  const tree = system.processes;
  expect(await system?.stop('SIGTERM')).toBe(0);
  await new Promise((r) => setTimeout(r, 500));
  expect(alive(tree)).toEqual([]); // SIGTERM stops everything too
});

const events = (file: string) =>
  readFileSync(join(system.stateDir, 'logs', file), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; code?: string });

it('says at start that the worker was refused', () => {
  expect(system.output()).toMatch(/registration was refused \(ERR_MEASUREMENT_NOT_ALLOWED\)/);
});

it('gives the client a clear error instead of an answer', async () => {
  const openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  const err = await openai.chat.completions
    .create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'hello' }] })
    .then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.APIError);
  const apiError = err as InstanceType<typeof OpenAI.APIError>;
  expect(apiError.status).toBe(503);
  expect(apiError.code).toBe('ERR_WORKER_NOT_ATTESTED');
  expect(apiError.message).toMatch(/not passed attestation/);
});

it('never released a secret to it', () => {
  const as = events('attestation-service.log');
  expect(as.some((e) => e.event === 'worker-refused' && e.code === 'ERR_MEASUREMENT_NOT_ALLOWED')).toBe(true);
  expect(as.some((e) => e.event === 'worker-admitted')).toBe(false);
  expect(as.some((e) => e.event === 'secret-accepted')).toBe(true); // the client did exchange one
  expect(as.some((e) => e.event === 'secret-released')).toBe(false);
});
