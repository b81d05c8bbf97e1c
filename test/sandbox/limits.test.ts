/**
 * Resource limits of the AI code sandbox, through `obscura sandbox exec` (real runsc): memory over the
 * limit kills the sandbox (exit 137), not the host; a fork bomb is bounded by the pids limit. Each
 * hostile run has a control run that stays under the limit and finishes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_SETTINGS } from '../../worker-os/sandbox/defaults.ts';
import { obscura, type CliResult } from './helpers.ts';

let stateDir: string;
let memoryOver: CliResult;
let memoryUnder: CliResult;
let forkBomb: CliResult;
let forkFew: CliResult;
let leftover: string[];

/** Host processes whose command line names the state dir (runsc, its gofer and sandbox). */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(dir)) found.push(`${pid}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'obscura-limits-'));
  const exec = (opts: string[], cmd: string[]) => obscura(['sandbox', 'exec', '--app', 'test/sandbox/hostile', ...opts, '--', ...cmd], { env: { OBSCURA_STATE_DIR: stateDir } });
  [memoryOver, memoryUnder, forkBomb, forkFew] = await Promise.all([
    exec(['--memory', '256m', '--json'], ['/usr/bin/node', '/app/memory-hog.mjs', '2048']),
    exec([], ['/usr/bin/node', '/app/memory-hog.mjs', '256']),
    exec([], ['/bin/sh', '/app/fork-bomb.sh', '1000']),
    exec([], ['/bin/sh', '/app/fork-bomb.sh', '5']),
  ]);
  leftover = processesUsing(stateDir);
});

afterAll(() => {
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe('sandbox resource limits (real runsc)', () => {
  it('memory over the limit kills the sandbox with 137; under it the same program finishes', () => {
    expect(memoryOver.code, memoryOver.stderr).toBe(137);
    expect(memoryOver.stdout).not.toContain('done');
    const json = JSON.parse(memoryOver.stderr.trim().split('\n').pop()!);
    expect(json).toMatchObject({ exitStatus: 137, settings: { memoryLimitBytes: 256 * 1024 * 1024 } });
    expect(memoryUnder.code, memoryUnder.stderr).toBe(0);
    expect(memoryUnder.stdout).toContain('done 256 MiB');
  });

  it('a fork bomb is bounded by the pids limit (the sandbox ends; the host is untouched)', () => {
    // Under gVisor's ptrace platform the pids limit is on the Sentry's host cgroup (its threads and
    // stub processes), so a fork bomb exhausts it after a few dozen processes and the whole sandbox
    // exits (the Sentry cannot create an OS thread): bounded, and the host keeps its own pids.
    expect(forkBomb.code).not.toBe(0);
    expect(forkBomb.stdout).not.toContain('done');
    const started = Math.max(0, ...[...forkBomb.stdout.matchAll(/started (\d+)/g)].map((m) => Number(m[1])));
    expect(started).toBeLessThan(DEFAULT_SANDBOX_SETTINGS.pidsLimit);
    expect(forkFew.code, forkFew.stderr).toBe(0);
    expect(forkFew.stdout).toContain('done');
  });

  it('nothing of a killed sandbox is left running on the host, and its state is removed', () => {
    expect(leftover).toEqual([]);
    expect(readdirSync(join(stateDir, 'sandbox-exec'))).toEqual([]);
  });
});
