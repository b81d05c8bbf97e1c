/**
 * Faults on the real system: the AI code killed mid-stream (the client gets a typed error, never an
 * answer cut short that looks complete, and the worker restarts the AI code).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { findRunsc } from '../../worker-os/sandbox/runsc.ts';
import { startSystem, type RunningSystem } from './harness.ts';

let system: RunningSystem;
let openai: OpenAI;

beforeAll(async () => {
  // Paced like a real model's decoding, so there is time to kill it mid-stream.
  system = await startSystem({ args: ['--tokens-per-second', '40'] });
  openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
});

afterAll(async () => {
  expect(await system?.stop()).toBe(0);
});

const workerEvents = () =>
  readFileSync(join(system.stateDir, 'logs', 'worker.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; restarts?: number; sandboxId?: string });

it('the AI code killed mid-stream: a typed error, then the worker restarts it', async () => {
  const stream = await openai.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'the sea' }], max_tokens: 200, stream: true });
  let received = 0;
  let error: unknown;
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) received++;
      if (received === 5) {
        const sandboxId = workerEvents().find((e) => e.event === 'ai-code-started')!.sandboxId!;
        const killed = spawnSync(findRunsc()!, [`--root=${join(system.stateDir, 'worker', 'runsc')}`, 'kill', '--all', sandboxId, 'SIGKILL']);
        expect(killed.status).toBe(0);
      }
    }
  } catch (e) {
    error = e;
  }
  expect(received).toBeGreaterThanOrEqual(5);
  expect(received).toBeLessThan(200);
  expect(error).toBeInstanceOf(OpenAI.APIError);
  expect((error as InstanceType<typeof OpenAI.APIError>).message).toMatch(/ERR_STREAM_TRUNCATED|authenticated final frame/);

  for (let i = 0; i < 100 && !workerEvents().some((e) => e.event === 'ai-code-started' && e.restarts === 1); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(workerEvents().some((e) => e.event === 'ai-code-exited')).toBe(true);
  expect(workerEvents().some((e) => e.event === 'ai-code-started' && e.restarts === 1)).toBe(true);
  const again = await openai.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'the sea' }], max_tokens: 4 });
  expect(again.choices[0].message.content?.length).toBeGreaterThan(0);
});
