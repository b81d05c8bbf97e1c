/**
 * The processes of a running system, by part (from /proc): RSS (VmRSS) and CPU time (utime + stime).
 * The tree is this process's descendants (harness.ts `descendants()`): `obscura up` with the client
 * proxy in it, the attestation service, the worker agent, the AI code's runsc processes, wrangler and
 * its workerd; this process (the bench's SDK client) is counted as the client side.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { descendants } from '../../e2e/harness.ts';

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

export const PART_ORDER = [
  'attestation service',
  'worker agent',
  'AI code sandbox (gVisor)',
  'edge (workerd)',
  'edge (wrangler dev)',
  'obscura up + client proxy',
  'bench client (this process)',
  'esbuild (tsx/wrangler loaders)',
  'other',
] as const;
export type Part = (typeof PART_ORDER)[number];

export interface Proc {
  pid: number;
  ppid: number;
  part: Part;
  cmd: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function ppidOf(pid: number): number {
  const stat = read(`/proc/${pid}/stat`) ?? '';
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function classify(cmd: string, parentPart: Part | undefined): Part {
  if (cmd.includes('esbuild')) return 'esbuild (tsx/wrangler loaders)';
  if (cmd.includes('attestation-service/main.ts')) return 'attestation service';
  if (cmd.includes('backend/main.ts')) return 'worker agent';
  if (/^runsc|\/runsc\b|runsc-(gofer|sandbox)/.test(cmd)) return 'AI code sandbox (gVisor)';
  if (cmd.includes('workerd')) return 'edge (workerd)';
  if (cmd.includes('wrangler')) return 'edge (wrangler dev)';
  if (cmd.includes('obscura.mjs') && cmd.includes(' up ')) return 'obscura up + client proxy';
  return parentPart ?? 'other'; // e.g. the sandbox's unnamed host threads: their parent's part
}

/** This process and every descendant, each with its part. */
export function systemProcesses(root = process.pid): Proc[] {
  const out: Proc[] = [{ pid: root, ppid: ppidOf(root), part: 'bench client (this process)', cmd: 'bench' }];
  const partOf = new Map<number, Part>([[root, 'bench client (this process)']]);
  for (const pid of descendants(root)) {
    // descendants() lists parents before their children.
    const cmd = (read(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ').trim();
    const ppid = ppidOf(pid);
    const parentPart = partOf.get(ppid);
    const part = classify(cmd, parentPart === 'bench client (this process)' ? undefined : parentPart);
    partOf.set(pid, part);
    out.push({ pid, ppid, part, cmd: cmd.slice(0, 120) });
  }
  return out;
}

/** VmRSS in KiB (0 when gone). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : 0;
}

/** utime + stime in ms (0 when gone). */
export function cpuMs(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS_PER_S;
}

export interface PartRss {
  part: Part;
  pids: number;
  rssMiB: number;
}

export function rssByPart(procs: readonly Proc[]): PartRss[] {
  const by = new Map<Part, PartRss>();
  for (const p of procs) {
    const kib = rssKiB(p.pid);
    const e = by.get(p.part) ?? { part: p.part, pids: 0, rssMiB: 0 };
    if (kib > 0) e.pids++;
    e.rssMiB += kib / 1024;
    by.set(p.part, e);
  }
  return PART_ORDER.filter((p) => by.has(p)).map((p) => ({ ...by.get(p)!, rssMiB: Math.round(by.get(p)!.rssMiB * 10) / 10 }));
}

/** CPU ms per part, now; subtract two snapshots for a phase's cost. */
export function cpuByPart(procs: readonly Proc[]): Map<Part, number> {
  const by = new Map<Part, number>();
  for (const p of procs) by.set(p.part, (by.get(p.part) ?? 0) + cpuMs(p.pid));
  return by;
}

export function cpuDelta(before: Map<Part, number>, after: Map<Part, number>): Partial<Record<Part, number>> {
  const out: Partial<Record<Part, number>> = {};
  for (const part of PART_ORDER) {
    const d = (after.get(part) ?? 0) - (before.get(part) ?? 0);
    if (d > 0) out[part] = d;
  }
  return out;
}

/**
 * Other runsc processes running a sandbox for AI code `name` on this host (not under `root`). The
 * worker names the container `aicode-<name>`, and this runsc names its control socket after the
 * container id, so while another local deployment runs the same AI code, a second one's sandbox fails
 * to start ("creating control server socket ... address already in use").
 */
export function otherAiCodeSandboxes(name: string, root = process.pid): number[] {
  const mine = new Set(descendants(root));
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || mine.has(Number(entry))) continue;
    const cmd = (read(`/proc/${entry}/cmdline`) ?? '').replace(/\0/g, ' ');
    if (cmd.includes('runsc') && new RegExp(`aicode-${name}(\\s|$)`).test(cmd)) out.push(Number(entry));
  }
  return out;
}
