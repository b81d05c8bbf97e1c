/**
 * The client's full check of an attestation bundle (verifyBundle with the local client policy), warm
 * (repeated in this process) and cold (the first call in a fresh `node --import tsx` process).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { BUNDLE_CONTENT_TYPE } from '../../../shared/protocol/constants.ts';
import { verifyBundle } from '../../../shared/protocol/verify-bundle.ts';
import type { RunningSystem } from '../../e2e/harness.ts';
import { clientPolicy } from './paths.ts';
import { bundleVerificationOptions } from '../../../client/sdk/policy.ts';
import { median, round, spreadOf, summarize, type Spread } from './stats.ts';

const COLD_SCRIPT = fileURLToPath(new URL('../verify-cold.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Fetch the bundle from the edge, as a client does, and keep it (and the policy) in `dir` for the cold runs. */
export async function fetchBundle(system: RunningSystem, dir: string): Promise<{ bundlePath: string; policyPath: string; bytes: Uint8Array }> {
  const agent = new Agent({ connect: { ca: system.caPem } });
  try {
    const res = await request(`${system.edgeUrl}/v1/attestation`, { headers: { accept: BUNDLE_CONTENT_TYPE }, dispatcher: agent });
    if (res.statusCode !== 200) throw new Error(`the edge answered ${res.statusCode} for the bundle`);
    const bytes = new Uint8Array(await res.body.arrayBuffer());
    const bundlePath = join(dir, 'bundle.cbor');
    const policyPath = join(dir, 'client-policy.json');
    writeFileSync(bundlePath, bytes);
    writeFileSync(policyPath, JSON.stringify(clientPolicy(system.stateDir)));
    return { bundlePath, policyPath, bytes };
  } finally {
    await agent.close();
  }
}

export async function warmVerify(bytes: Uint8Array, stateDir: string, iterations = 40): Promise<{ p50: number; spread: Spread; n: number }> {
  const p = clientPolicy(stateDir);
  const check = () =>
    verifyBundle(bytes, bundleVerificationOptions(p, Date.now()));
  for (let i = 0; i < 10; i++) await check();
  const ms: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await check();
    ms.push(performance.now() - t0);
  }
  const s = summarize(ms);
  return { p50: round(s.p50), spread: { min: round(s.min), p25: round(s.p25), p75: round(s.p75), max: round(s.max) }, n: ms.length };
}

export interface ColdVerify {
  p50: number;
  spread: Spread;
  secondCallMs: number;
  processToResultMs: number; // node start + imports + first check
  n: number;
}

export async function coldVerify(bundlePath: string, policyPath: string, runs: number): Promise<ColdVerify> {
  const run = promisify(execFile);
  const once = async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', COLD_SCRIPT, bundlePath, policyPath], { cwd: PROJECT_ROOT, timeout: 60_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as { firstMs: number; secondMs: number; importedAtMs: number; totalMs: number };
  };
  await once(); // warm the disk cache and tsx's transform cache: "cold" is the process, not the disk
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await once());
  const first = results.map((r) => r.firstMs);
  return {
    p50: round(median(first)),
    spread: spreadOf(first),
    secondCallMs: round(median(results.map((r) => r.secondMs))),
    processToResultMs: round(median(results.map((r) => r.importedAtMs + r.firstMs))),
    n: runs,
  };
}
