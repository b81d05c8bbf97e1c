/**
 * A real inference engine as AI code: `obscura up --ai-code llama` runs llama.cpp (node-llama-cpp) in
 * the gVisor sandbox behind the encryption proxy, and the official openai client talks to it through
 * the client proxy and the edge, sealed end to end. Its sandbox is exactly any AI code's sandbox.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../shared/manifest/schema.ts';
import { directoryDigest, PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { writeSandboxBundle } from '../../worker-os/sandbox/oci-bundle.ts';
import { runscGlobalArgs } from '../../worker-os/sandbox/runsc-args.ts';
import { defaultSandboxId } from '../../backend/ai-code-supervisor.ts';
import { alive, filesContaining, filesWrittenSince, startSystem, type RunningSystem } from '../e2e/harness.ts';

const APP_DIR = join(PROJECT_ROOT, 'worker-os', 'ai-code', 'llama');
const SAMPLE_DIR = join(PROJECT_ROOT, 'worker-os', 'ai-code', 'sample-ngram');
// Fixed, not random: it is part of the prompts, and a random one made the tiny generated model's answers (and
// so how many events a stream has) differ from run to run. Unique enough for the leak checks below.
const CANARY = 'canary-llama-e2e-5c1f0a93d7b2e684a0c3';
const startedAt = Date.now();
let system: RunningSystem;
let openai: OpenAI;
let manifest: Manifest;

beforeAll(async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'obscura-llama-e2e-'));
  const t0 = performance.now();
  system = await startSystem({ stateDir, args: ['--ai-code', 'llama'] });
  console.log(`obscura up --ai-code llama: ready in ${Math.round(performance.now() - t0)} ms`);
  openai = new OpenAI({ baseURL: system.proxyUrl, apiKey: 'local', maxRetries: 0 });
  const agent = new Agent({ connect: { ca: system.caPem } });
  manifest = ((await (await request(`${system.asUrl}/v1/manifest`, { dispatcher: agent })).body.json()) as { manifest: Manifest }).manifest;
  await agent.close();
});

afterAll(async () => {
  if (!system) return;
  const tree = system.processes;
  expect(await system.stop('SIGINT')).toBe(0);
  await new Promise((r) => setTimeout(r, 500));
  expect(alive(tree)).toEqual([]); // no runsc, Sentry or engine process left behind
  rmSync(system.stateDir, { recursive: true, force: true });
});

describe('the manifest of `obscura up --ai-code llama`', () => {
  it('allows both AI codes and both models, pinning the vendored engine and the generated model', () => {
    expect(manifest.aiCode.map((a) => a.name).sort()).toEqual(['llama', 'sample-ngram']);
    const llama = manifest.aiCode.find((a) => a.name === 'llama')!;
    expect(llama.imageDigest).toBe(directoryDigest(APP_DIR)); // node_modules (engine, native libraries) included
    expect(llama.command).toEqual(['/usr/bin/node', '/app/server.mjs']);
    const gguf = join(system.stateDir, 'models', 'llama.gguf');
    const digest = `sha256:${createHash('sha256').update(readFileSync(gguf)).digest('hex')}`;
    expect(manifest.models.find((m) => m.name === 'llama')).toEqual({ name: 'llama', weightsDigest: digest, aiCode: ['llama'] });
    expect(manifest.models.map((m) => m.name).sort()).toEqual(['llama', 'sample-ngram']);
    // The model is the generator's default output: deterministic.
    const fresh = join(system.stateDir, 'fresh.gguf');
    execFileSync(process.execPath, [join(APP_DIR, 'make-gguf.mjs'), fresh]);
    expect(readFileSync(fresh).equals(readFileSync(gguf))).toBe(true);
  });
});

describe('llama.cpp in gVisor through the sealed path, with the official openai client', () => {
  it('lists the model', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['llama']);
  });

  it('completes a chat; a seed makes it reproducible', async () => {
    const ask = () => openai.chat.completions.create({ model: 'llama', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `Tell me about the sea ${CANARY}` }], max_tokens: 24, seed: 11, temperature: 1 });
    const a = await ask();
    const b = await ask();
    expect(a.object).toBe('chat.completion');
    expect(a.model).toBe('llama');
    const text = a.choices[0].message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(CANARY);
    expect(['length', 'stop']).toContain(a.choices[0].finish_reason);
    expect(a.usage!.prompt_tokens).toBeGreaterThan(5);
    expect(a.usage!.completion_tokens).toBeGreaterThan(0);
    expect(a.usage!.completion_tokens).toBeLessThanOrEqual(24);
    expect(b.choices[0].message.content).toBe(text); // same seed, same engine state: same answer
  });

  it('streams a chat completion event by event, with usage', async () => {
    const stream = await openai.chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: `It was the best of times ${CANARY}` }],
      max_tokens: 32,
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let contentChunks = 0;
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.delta?.content) {
        contentChunks++;
        text += c.delta.content;
      }
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(contentChunks).toBeGreaterThan(1);
    expect(text.length).toBeGreaterThan(0);
    expect(['length', 'stop']).toContain(finish);
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    expect(usage!.completion_tokens).toBeLessThanOrEqual(32);
    // The streamed answer is the non-streamed one: the same engine, the same seed.
    const whole = await openai.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: `It was the best of times ${CANARY}` }], max_tokens: 32, seed: 3 });
    expect(whole.choices[0].message.content).toBe(text);
  });

  it('serves legacy completions, and refuses a prompt beyond its context', async () => {
    const c = await openai.completions.create({ model: 'llama', prompt: `Call me Ishmael ${CANARY}`, max_tokens: 8 });
    expect(c.choices[0].text.length).toBeGreaterThan(0);
    const tooLong = await openai.chat.completions
      .create({ model: 'llama', messages: [{ role: 'user', content: 'the sea '.repeat(3000) }], max_tokens: 4 })
      .then(() => undefined, (e: unknown) => e);
    expect(tooLong).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('leaves no prompt in any file the system wrote', () => {
    const written = filesWrittenSince(system.stateDir, startedAt);
    expect(written.length).toBeGreaterThan(0);
    expect(filesContaining(written, CANARY)).toEqual([]);
  });
});

describe("the llama AI code's sandbox is any AI code's sandbox", () => {
  const workerState = () => join(system.stateDir, 'worker');

  it('has the same OCI bundle as the sample would get, but for /app', () => {
    const llamaConfig = JSON.parse(readFileSync(join(workerState(), 'bundles', defaultSandboxId('llama', workerState()), 'config.json'), 'utf8'));
    const sampleEntry = manifest.aiCode.find((a) => a.name === 'sample-ngram')!;
    const llamaEntry = manifest.aiCode.find((a) => a.name === 'llama')!;
    expect(llamaEntry.sandbox).toEqual(sampleEntry.sandbox);
    const bundleDir = mkdtempSync(join(tmpdir(), 'obscura-llama-bundle-'));
    const channel = llamaConfig.mounts.find((m: { destination: string }) => m.destination === '/run/obscura').source;
    writeSandboxBundle({ bundleDir, appDir: SAMPLE_DIR, channelDir: channel, command: sampleEntry.command, env: {}, settings: sampleEntry.sandbox });
    const sampleConfig = JSON.parse(readFileSync(join(bundleDir, 'config.json'), 'utf8'));
    rmSync(bundleDir, { recursive: true, force: true });
    const normalize = (c: { process: { env: string[] }; mounts: { destination: string; source: string }[] }) => ({
      ...c,
      process: { ...c.process, env: c.process.env.filter((e) => !e.startsWith('OBSCURA_')) },
      mounts: c.mounts.map((m) => (m.destination === '/app' ? { ...m, source: '<app>' } : m)),
    });
    expect(normalize(llamaConfig)).toEqual(normalize(sampleConfig));
    // /app read-only, from the llama directory only: no other way in for the engine.
    const app = llamaConfig.mounts.find((m: { destination: string }) => m.destination === '/app');
    expect(app.source).toBe(APP_DIR);
    expect(app.options).toContain('ro');
    expect(llamaConfig.root.readonly).toBe(true);
    expect(llamaConfig.process.user.uid).toBe(65532);
  });

  it('runs under the same runsc flags (no network)', () => {
    const cmdlines = system.processes
      .map((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
        } catch {
          return [];
        }
      })
      .filter((argv) => argv.includes('run') && argv.includes(defaultSandboxId('llama', workerState())) && argv.includes('--bundle'));
    expect(cmdlines.length).toBeGreaterThan(0);
    const expected = [...runscGlobalArgs({ stateRoot: join(workerState(), 'runsc') }), 'run', '--bundle', join(workerState(), 'bundles', defaultSandboxId('llama', workerState())), defaultSandboxId('llama', workerState())];
    expect(cmdlines[0].slice(1)).toEqual(expected);
    expect(expected).toContain('--network=none');
  });
});
