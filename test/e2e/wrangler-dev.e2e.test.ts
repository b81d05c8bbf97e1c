/**
 * The same system with the edge run by `wrangler dev` (`obscura up --edge-runtime wrangler`) instead
 * of Miniflare: the worker, bindings and path are the same; this keeps the wrangler dev path working.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { alive, startSystem, type RunningSystem } from './harness.ts';

let system: RunningSystem;

beforeAll(async () => {
  system = await startSystem({ args: ['--edge-runtime', 'wrangler'] });
});

afterAll(async () => {
  const tree = system.processes;
  expect(await system?.stop()).toBe(0);
  await new Promise((r) => setTimeout(r, 500));
  expect(alive(tree)).toEqual([]); // wrangler's workerd goes with it
});

it('serves a sealed streamed chat through wrangler dev', async () => {
  expect(system.output()).toMatch(/edge \(workerd via wrangler dev\)/);
  const openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  const stream = await openai.chat.completions.create({ model: 'sample-ngram', messages: [{ role: 'user', content: 'the sea' }], max_tokens: 8, stream: true });
  let chunks = 0;
  for await (const c of stream) if (c.choices[0]?.delta?.content) chunks++;
  expect(chunks).toBe(8);
});
