/**
 * Faults `npm run load` injects into a running system mid-window, through what `obscura up` says it
 * runs (`<state>/parts.json`):
 *  - as-restart: SIGKILL the attestation service; `up --restart on-failure` starts it again exactly as
 *    it first did. Checked: the manifest chain head, the workers and the secrets survive (the service's
 *    own API before and after, and its `state-opened` log line against the secrets it had accepted).
 *  - worker-down: SIGKILL the first worker (the one the edge routes to while it is healthy) and its
 *    process group, with `up --workers 2`; the second serves from then on.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { RunningSystem } from '../../e2e/harness.ts';

export type FaultKind = 'none' | 'as-restart' | 'worker-down';
export const FAULT_KINDS: readonly FaultKind[] = ['none', 'as-restart', 'worker-down'];

const RECOVERY_TIMEOUT_MS = 60_000;

function logEvents(path: string): Record<string, unknown>[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

function partNamed(system: RunningSystem, name: string) {
  const part = system.parts()?.parts.find((p) => p.name === name);
  if (!part) throw new Error(`up runs no part named "${name}" (see ${system.stateDir}/parts.json)`);
  return part;
}

/** Requests that each worker answered in full so far (its `inference` log lines with outcome ok). */
export function servedByWorker(system: RunningSystem): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of system.parts()?.parts ?? []) {
    if (p.name.startsWith('worker')) out[p.name] = logEvents(p.logPath).filter((e) => e.event === 'inference' && e.outcome === 'ok').length;
  }
  return out;
}

interface AsState {
  head: string;
  chain_entries: number;
  workers: string[]; // workerId:current
  secrets_accepted: number; // secret-accepted lines in its log so far
}

async function asState(system: RunningSystem, agent: Agent, logPath: string): Promise<AsState> {
  const get = async (path: string) => {
    const res = await request(`${system.asUrl}${path}`, { dispatcher: agent });
    if (res.statusCode !== 200) throw new Error(`attestation service ${path}: status ${res.statusCode}`);
    return (await res.body.json()) as Record<string, unknown>;
  };
  const manifest = (await get('/v1/manifest')) as { head: string; chain: unknown[] };
  const workers = (await get('/v1/workers')) as { workers: { workerId: string; current: boolean }[] };
  return {
    head: manifest.head,
    chain_entries: manifest.chain.length,
    workers: workers.workers.map((w) => `${w.workerId}:${w.current}`).sort(),
    secrets_accepted: logEvents(logPath).filter((e) => e.event === 'secret-accepted').length,
  };
}

export interface AsRestartReport {
  killed_pid: number;
  new_pid: number;
  down_ms: number; // SIGKILL → the restarted service answers /healthz
  before: AsState;
  after: AsState;
  state_opened: Record<string, unknown> | undefined; // the restarted service's own account
  survived: { manifest_head: boolean; workers: boolean; secrets: boolean };
}

/** SIGKILL the attestation service; `onDown` runs right after the kill. Resolves once it is back. */
export async function restartAttestationService(system: RunningSystem, onDown: () => void): Promise<AsRestartReport> {
  const agent = new Agent({ connect: { ca: system.caPem }, connectTimeout: 1_000 });
  try {
    const part = partNamed(system, 'attestation service');
    const before = await asState(system, agent, part.logPath);
    const t0 = performance.now();
    process.kill(-part.pid, 'SIGKILL');
    onDown();
    let newPid = 0;
    for (;;) {
      if (performance.now() - t0 > RECOVERY_TIMEOUT_MS) throw new Error(`the attestation service was not back within ${RECOVERY_TIMEOUT_MS} ms (is up running with --restart on-failure?)`);
      const now = system.parts()?.parts.find((p) => p.name === 'attestation service');
      if (now && now.pid !== part.pid && now.alive) {
        const ok = await request(`${system.asUrl}/healthz`, { dispatcher: agent, headersTimeout: 1_000 }).then(
          async (r) => (await r.body.text(), r.statusCode === 200),
          () => false,
        );
        if (ok) {
          newPid = now.pid;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const downMs = Math.round(performance.now() - t0);
    const after = await asState(system, agent, part.logPath);
    const stateOpened = logEvents(part.logPath).filter((e) => e.event === 'state-opened').at(-1);
    return {
      killed_pid: part.pid,
      new_pid: newPid,
      down_ms: downMs,
      before,
      after,
      state_opened: stateOpened,
      survived: {
        manifest_head: after.head === before.head && after.chain_entries === before.chain_entries,
        workers: JSON.stringify(after.workers) === JSON.stringify(before.workers),
        secrets: stateOpened?.origin === 'restored' && Number(stateOpened.secrets) >= before.secrets_accepted,
      },
    };
  } finally {
    await agent.close();
  }
}

export interface WorkerDownReport {
  killed: string;
  killed_pid: number;
  served_before: Record<string, number>;
  served_after?: Record<string, number>; // filled in at the end of the run
}

/** SIGKILL the first worker's process group (agent and what runs in its group). */
export function killFirstWorker(system: RunningSystem): WorkerDownReport {
  const part = partNamed(system, 'worker');
  if (!part.alive) throw new Error('the first worker is not running');
  if ((system.parts()?.parts.filter((p) => p.name.startsWith('worker')).length ?? 0) < 2) throw new Error('worker-down needs --workers 2 or more');
  const served = servedByWorker(system);
  process.kill(-part.pid, 'SIGKILL');
  return { killed: part.name, killed_pid: part.pid, served_before: served };
}
