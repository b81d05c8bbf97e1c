/**
 * Starting and stopping the local deployment's processes. Each part runs in its own process group
 * (so wrangler's workerd goes with it), logs to a file under the state directory, and is told the
 * orchestrator's pid so it exits by itself if the orchestrator dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { PROJECT_ROOT } from '../../../worker-os/image-digest.ts';

export interface RunningPart {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 8_000;

export function startPart(input: { name: string; command: string; args: string[]; env?: Record<string, string>; logPath: string }): RunningPart {
  const fd = openSync(input.logPath, 'a', 0o600);
  const child = spawn(input.command, input.args, {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...input.env, OBSCURA_PARENT_PID: String(process.pid) },
    stdio: ['ignore', fd, fd],
    detached: true, // own process group: killing the group takes its children (workerd) too
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* already gone */
    }
  };
  return {
    name: input.name,
    child,
    logPath: input.logPath,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        signalGroup('SIGKILL'); // the leader is gone; make sure the rest of its group is too
        return;
      }
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
      signalGroup('SIGKILL');
    },
  };
}

/** How a part's process ended, for a log line: `code 1`, `signal SIGKILL`. */
export function exitDescription(child: ChildProcess): string {
  return child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
}

/**
 * `<stateDir>/parts.json`: what `obscura up` runs now, rewritten whenever a part starts, restarts or
 * exits, removed when up stops. For tools that inspect a part or fault it (test/bench/load.ts).
 */
export const PARTS_FILE = 'parts.json';

export interface PartRecord {
  name: string;
  pid: number;
  alive: boolean;
  url?: string;
  logPath: string;
  restarts: number;
}

export interface PartsFile {
  upPid: number;
  parts: PartRecord[];
}

export function writePartsFile(stateDir: string, file: PartsFile): void {
  const path = join(stateDir, PARTS_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path); // readers never see half a file
}

export function readPartsFile(stateDir: string): PartsFile | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, PARTS_FILE), 'utf8')) as PartsFile;
  } catch {
    return undefined;
  }
}

export function removePartsFile(stateDir: string): void {
  rmSync(join(stateDir, PARTS_FILE), { force: true });
}

/** Node running one of the project's TypeScript entry points through tsx. */
export function nodeTs(entry: string, args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', entry, ...args] };
}

export async function waitForHttps(
  url: string,
  caPem: string,
  opts: { timeoutMs: number; part?: RunningPart; accept?: (status: number, body: string) => boolean },
): Promise<void> {
  const agent = new Agent({ connect: { ca: caPem }, connectTimeout: 2_000 });
  const deadline = Date.now() + opts.timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (opts.part && opts.part.child.exitCode !== null) {
        throw new Error(`${opts.part.name} exited (code ${opts.part.child.exitCode}); see ${opts.part.logPath}`);
      }
      try {
        const res = await request(url, { dispatcher: agent, headersTimeout: 3_000, bodyTimeout: 3_000 });
        const body = await res.body.text();
        if (opts.accept ? opts.accept(res.statusCode, body) : res.statusCode === 200) return;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${url} did not come up within ${opts.timeoutMs} ms${opts.part ? `; see ${opts.part.logPath}` : ''}`);
  } finally {
    await agent.close();
  }
}
