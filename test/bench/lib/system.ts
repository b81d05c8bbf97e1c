/**
 * Starting the local deployment for a bench (test/e2e/harness.ts startSystem), robust to a neighbour:
 * only one deployment on a host can run a given AI code under runsc at a time (the worker names the
 * container `aicode-<name>`, and this runsc names its control socket after the container id), so wait
 * while another deployment's sandbox runs it, and retry a failed start.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSystem, type RunningSystem, type StartOptions } from '../../e2e/harness.ts';
import { aiSocketPath, MODEL } from './paths.ts';
import { otherAiCodeSandboxes } from './procs.ts';
import { step } from './stats.ts';

const WAIT_FOR_NEIGHBOUR_MS = 120_000;
const WAIT_FOR_AI_CODE_MS = 20_000;

/** `up` is ready even when the worker was not admitted; the bench needs an attested worker serving its AI code. */
async function servingAiCode(system: RunningSystem): Promise<void> {
  const refused = /WARNING: the worker's registration was refused[^\n]*/.exec(system.output());
  if (refused) throw new Error(`the system started, but ${refused[0].replace(/^WARNING: /, '')}`);
  const deadline = Date.now() + WAIT_FOR_AI_CODE_MS;
  while (!existsSync(aiSocketPath(system.stateDir, MODEL, system.processes))) {
    if (Date.now() > deadline) throw new Error(`the system started, but its AI code is not serving (no socket ${aiSocketPath(system.stateDir, MODEL, system.processes)}); see ${system.stateDir}/logs/worker.log`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function aiCodeIdFree(): Promise<void> {
  if (otherAiCodeSandboxes(MODEL).length === 0) return;
  step(`  waiting: another local deployment runs AI code "${MODEL}" under runsc (container id aicode-${MODEL}); this runsc cannot start a second sandbox with that id`);
  const deadline = Date.now() + WAIT_FOR_NEIGHBOUR_MS;
  while (otherAiCodeSandboxes(MODEL).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2_000));
  if (otherAiCodeSandboxes(MODEL).length) step('  still running elsewhere: trying anyway (the worker will likely fail to start its AI code)');
}

export async function startBenchSystem(stateDir: string, opts: Omit<StartOptions, 'stateDir'> = {}, attempts = 3): Promise<RunningSystem> {
  for (let attempt = 1; ; attempt++) {
    const dir = attempt === 1 ? stateDir : `${stateDir}-retry${attempt - 1}`;
    mkdirSync(dir, { recursive: true });
    await aiCodeIdFree();
    const started = performance.now();
    try {
      const system = await startSystem({ ...opts, stateDir: dir });
      try {
        await servingAiCode(system);
      } catch (e) {
        await system.stop().catch(() => {});
        throw e;
      }
      step(`  system ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return system;
    } catch (e) {
      if (attempt >= attempts) throw e;
      const failed = String((e as Error).message).split('\n').find((l) => l.includes('failed')) ?? String(e).split('\n')[0];
      step(`  the system did not start (${failed.trim()}); retrying in 5 s`);
      await new Promise((r) => setTimeout(r, 5_000));
    }
  }
}

/**
 * How many times `wrangler dev` reloaded the edge after it started: it watches the edge's sources in
 * this checkout, and a reload cuts the requests in flight (a plain-text 503 "Your worker restarted
 * mid-request", or a connection reset). Counted from its debug log under `<stateDir>/logs/wrangler`.
 */
export function edgeReloads(stateDir: string): number {
  const dir = join(stateDir, 'logs', 'wrangler');
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const f of readdirSync(dir)) {
    try {
      n += readFileSync(join(dir, f), 'utf8').split('Reloading local server').length - 1;
    } catch {
      /* unreadable: not counted */
    }
  }
  return n;
}
