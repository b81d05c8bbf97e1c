/**
 * The llama AI code's host-side parts: the GGUF generator is deterministic and writes a model llama.cpp
 * loads and runs; prepare.mjs copies the engine into the AI code directory so its digest pins it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryDigest, PROJECT_ROOT } from '../../worker-os/image-digest.ts';

const APP_DIR = join(PROJECT_ROOT, 'worker-os', 'ai-code', 'llama');
const dir = mkdtempSync(join(tmpdir(), 'obscura-llama-gguf-'));
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const makeGguf = (out: string, ...args: string[]) => execFileSync(process.execPath, [join(APP_DIR, 'make-gguf.mjs'), out, ...args]);

let llama: Llama;

beforeAll(async () => {
  execFileSync(process.execPath, [join(APP_DIR, 'prepare.mjs')]); // the engine, vendored (idempotent)
  llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, maxThreads: 1, logLevel: LlamaLogLevel.error, logger: () => {} });
});

afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('make-gguf.mjs', () => {
  it('is deterministic: the same seed gives the same sha256, another seed another file', () => {
    makeGguf(join(dir, 'a.gguf'));
    makeGguf(join(dir, 'b.gguf'));
    makeGguf(join(dir, 'c.gguf'), '--seed', '2');
    expect(sha256(join(dir, 'a.gguf'))).toBe(sha256(join(dir, 'b.gguf')));
    expect(sha256(join(dir, 'c.gguf'))).not.toBe(sha256(join(dir, 'a.gguf')));
    const bytes = readFileSync(join(dir, 'a.gguf'));
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(bytes.readUInt32LE(4)).toBe(3); // GGUF v3
    expect(bytes.length).toBeLessThan(4 * 1024 * 1024);
  });

  it('writes a llama model llama.cpp loads, tokenizes with and generates from (F32 and F16)', async () => {
    makeGguf(join(dir, 'f16.gguf'), '--type', 'f16', '--layers', '3', '--embd', '64', '--heads', '4', '--heads-kv', '4', '--ff', '128');
    for (const file of ['a.gguf', 'f16.gguf']) {
      const model = await llama.loadModel({ modelPath: join(dir, file), gpuLayers: 0 });
      try {
        const meta = model.fileInfo.metadata as unknown as { general: { architecture: string }; tokenizer: { ggml: { model: string; tokens: string[] } } };
        expect(meta.general.architecture).toBe('llama');
        expect(meta.tokenizer.ggml.model).toBe('llama');
        expect(meta.tokenizer.ggml.tokens.length).toBeGreaterThan(300);
        expect(meta.tokenizer.ggml.tokens.length).toBeLessThan(1000);
        const tokens = model.tokenize('the old man and the sea');
        expect(model.detokenize(tokens)).toBe('the old man and the sea');
        expect(tokens.length).toBeLessThan(10); // words are tokens, not bytes
        const context = await model.createContext({ contextSize: 256, threads: 1 });
        const out: number[] = [];
        for await (const t of context.getSequence().evaluate(tokens, { temperature: 0.8, seed: 7 })) {
          out.push(t);
          if (out.length === 16) break;
        }
        expect(out).toHaveLength(16);
        await context.dispose();
      } finally {
        await model.dispose();
      }
    }
  });
});

describe('prepare.mjs', () => {
  it('vendors the engine into the AI code directory: every file of it, native libraries included, is digested', () => {
    const stamp = JSON.parse(readFileSync(join(APP_DIR, 'node_modules', '.obscura-engine.json'), 'utf8')) as { packages: { rel: string; id: string }[] };
    expect(stamp.packages.map((p) => p.id)).toEqual(expect.arrayContaining(['node-llama-cpp@3.21.1', '@node-llama-cpp/linux-x64@3.21.1']));
    expect(stamp.packages.some((p) => /cuda|vulkan/.test(p.rel))).toBe(false);
    const addon = join(APP_DIR, 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64', 'llama-addon.node');
    expect(existsSync(addon)).toBe(true);
    expect(existsSync(join(APP_DIR, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle'))).toBe(false);

    // A copy has the same digest; one changed byte in the native addon changes it.
    const copy = join(dir, 'app');
    cpSync(APP_DIR, copy, { recursive: true });
    expect(directoryDigest(copy)).toBe(directoryDigest(APP_DIR));
    const copiedAddon = join(copy, 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64', 'llama-addon.node');
    const bytes = readFileSync(copiedAddon);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(copiedAddon, bytes);
    expect(directoryDigest(copy)).not.toBe(directoryDigest(APP_DIR));
  });

  it('is idempotent: a second run copies nothing and the digest stays', () => {
    const before = directoryDigest(APP_DIR);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import { vendorEngine } from ${JSON.stringify(join(APP_DIR, 'prepare.mjs'))}; console.log(JSON.stringify(vendorEngine()));`], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ copied: false });
    expect(directoryDigest(APP_DIR)).toBe(before);
  });
});
