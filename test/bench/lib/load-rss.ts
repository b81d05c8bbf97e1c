/**
 * RSS of every part of a running system for `npm run load`, sampled while it runs. The process tree is
 * read afresh at every sample (procs.ts `systemProcesses`), so a part that `up` restarted is counted
 * with its new process; with several workers, each worker's agent and AI code sandbox are their own
 * parts (found by ancestry from the worker pids in `<state>/parts.json`).
 */
import { readPartsFile } from '../../../client/cli/local-deployment/parts.ts';
import { rssKiB, systemProcesses, type Proc } from './procs.ts';

export interface RssSnapshot {
  /** MiB by part, summed over the part's processes. */
  mib: Record<string, number>;
  pids: Record<string, number>;
}

const ORDER = ['attestation service', 'worker agent', 'AI code sandbox (gVisor)', 'edge (Miniflare host, node)', 'edge (workerd)', 'edge (wrangler dev)', 'obscura up + client proxy', 'load client (this process)', 'esbuild (tsx/wrangler loaders)', 'other'];

/** Display order: by ORDER of the part's base name, then by worker. */
export function partOrder(a: string, b: string): number {
  const base = (p: string) => ORDER.indexOf(p.replace(/ \[.*\]$/, ''));
  const worker = (p: string) => Number(/\[worker(?:-(\d+))?\]$/.exec(p)?.[1] ?? 1);
  return base(a) - base(b) || worker(a) - worker(b);
}

export class RssRecorder {
  private readonly workerPids = new Map<number, string>(); // every worker pid seen, with its name
  private readonly peaks = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  readonly timeline: { t_s: number; mib: Record<string, number> }[] = [];

  constructor(
    private readonly stateDir: string,
    private readonly workers: number,
    private readonly t0 = performance.now(),
  ) {}

  private partOf(p: Proc, byPid: Map<number, Proc>): string {
    if (p.part === 'bench client (this process)') return 'load client (this process)';
    if (p.cmd.includes('edge/local-server.ts')) return 'edge (Miniflare host, node)';
    if (p.part !== 'worker agent' && p.part !== 'AI code sandbox (gVisor)') return p.part;
    if (this.workers < 2) return p.part;
    for (let q: Proc | undefined = p; q; q = byPid.get(q.ppid)) {
      const name = this.workerPids.get(q.pid);
      if (name) return `${p.part} [${name}]`;
    }
    return p.part;
  }

  /** The parts now, with their RSS; updates the peaks. */
  sample(): RssSnapshot {
    for (const part of readPartsFile(this.stateDir)?.parts ?? []) if (part.name.startsWith('worker')) this.workerPids.set(part.pid, part.name);
    const procs = systemProcesses();
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const snap: RssSnapshot = { mib: {}, pids: {} };
    for (const p of procs) {
      const kib = rssKiB(p.pid);
      const part = this.partOf(p, byPid);
      snap.mib[part] = (snap.mib[part] ?? 0) + kib / 1024;
      if (kib > 0) snap.pids[part] = (snap.pids[part] ?? 0) + 1;
    }
    for (const [part, mib] of Object.entries(snap.mib)) {
      snap.mib[part] = Math.round(mib * 10) / 10;
      this.peaks.set(part, Math.max(this.peaks.get(part) ?? 0, snap.mib[part]));
    }
    this.timeline.push({ t_s: Math.round((performance.now() - this.t0) / 100) / 10, mib: snap.mib });
    return snap;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  peak(part: string): number {
    return this.peaks.get(part) ?? 0;
  }

  /** Every part seen with memory, in display order. */
  parts(): string[] {
    return [...this.peaks].filter(([, mib]) => mib > 0).map(([part]) => part).sort(partOrder);
  }
}
