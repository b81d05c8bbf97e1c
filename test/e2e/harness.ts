/**
 * Test harness for end-to-end runs: the system started exactly as `npm start` starts it (the CLI's
 * `up`, as a child process), on free ports and a temporary state directory; TLS-terminating recording
 * relays that play the untrusted network on both sides of the edge; and a scan of every file written.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { ensureLocalPki } from '../../client/cli/local-deployment/local-pki.ts';
import { readPartsFile, type PartsFile } from '../../client/cli/local-deployment/parts.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive free ports (`up --workers N` numbers its workers' ports from one). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + count - 1 > 65_535) continue;
    let all = true;
    for (let i = 1; i < count && all; i++) all = await portFree(base + i);
    if (all) return base;
  }
  throw new Error(`no ${count} consecutive free ports`);
}

/** Records every byte of every request and response passing through it, in memory. */
export class RecordingRelay {
  readonly exchanges: { request: Buffer; response: Buffer; path: string; status: number }[] = [];
  private server?: Server;
  private agent?: Agent;
  url = '';
  private upstream = '';

  async start(upstream: string, tls: { certPem: string; keyPem: string; caPem: string }): Promise<void> {
    this.upstream = upstream;
    this.agent = new Agent({ connect: { ca: tls.caPem } });
    const port = await freePort();
    this.server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const reqBytes = Buffer.concat([Buffer.from(`${req.method} ${req.url}\n${JSON.stringify(req.headers)}\n`), ...chunks]);
      const record = { request: reqBytes, response: Buffer.alloc(0), path: req.url ?? '', status: 0 };
      this.exchanges.push(record);
      try {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
        const up = await request(`${this.upstream}${req.url}`, { method: req.method as 'GET', headers, body: chunks.length ? Buffer.concat(chunks) : undefined, dispatcher: this.agent });
        record.status = up.statusCode;
        const outHeaders: Record<string, string> = {};
        for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string' && !['connection', 'transfer-encoding', 'content-length', 'keep-alive'].includes(k)) outHeaders[k] = v;
        res.writeHead(up.statusCode, outHeaders);
        record.response = Buffer.concat([record.response, Buffer.from(`${up.statusCode}\n${JSON.stringify(up.headers)}\n`)]);
        for await (const c of up.body) {
          record.response = Buffer.concat([record.response, c as Buffer]);
          res.write(c);
        }
        res.end();
      } catch {
        res.destroy();
      }
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.url = `https://127.0.0.1:${port}`;
  }

  allBytes(): Buffer {
    return Buffer.concat(this.exchanges.flatMap((e) => [e.request, e.response]));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
    await this.agent?.close();
  }
}

/** All descendants of `pid` now (from /proc), so a test can check none outlives a stop. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

export function alive(pids: readonly number[]): number[] {
  return pids.filter((p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '));
}

export interface RunningSystem {
  stateDir: string;
  proxyUrl: string;
  edgeUrl: string;
  asUrl: string;
  workerUrl: string;
  /** Every worker's URL, in `up`'s order (`workerUrl` is the first). */
  workerUrls: string[];
  caPem: string;
  output: () => string;
  /** Every process `up` had started when it became ready (its whole tree). */
  processes: number[];
  /** What `up` runs now (`<stateDir>/parts.json`: each part's name, pid, URL, log, restarts). */
  parts(): PartsFile | undefined;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  stateDir?: string;
  args?: string[];
  relays?: { clientToEdge?: RecordingRelay; edgeToWorker?: RecordingRelay };
  env?: Record<string, string>;
  /** `up --workers N`, on N consecutive free ports (default 1: the flag is not passed). */
  workers?: number;
}

/** Start the system as `npm start` does (`obscura up`), and wait for its `ready` line. */
export async function startSystem(opts: StartOptions = {}): Promise<RunningSystem> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'obscura-e2e-'));
  const workerCount = opts.workers ?? 1;
  const ports = { as: await freePort(), worker: workerCount > 1 ? await freePortRange(workerCount) : await freePort(), edge: await freePort(), proxy: await freePort() };
  const edgeUrl = `https://127.0.0.1:${ports.edge}`;
  const workerUrl = `https://127.0.0.1:${ports.worker}`;
  const workerUrls = Array.from({ length: workerCount }, (_, i) => `https://127.0.0.1:${ports.worker + i}`);
  const pki = await ensureLocalPki(stateDir);
  const relayTls = { certPem: readFileSync(pki.servers.edge.certPath, 'utf8'), keyPem: readFileSync(pki.servers.edge.keyPath, 'utf8'), caPem: pki.caPem };
  const extra: string[] = [];
  if (opts.relays?.clientToEdge) {
    await opts.relays.clientToEdge.start(edgeUrl, relayTls);
    extra.push('--edge-url', opts.relays.clientToEdge.url);
  }
  if (opts.relays?.edgeToWorker) {
    await opts.relays.edgeToWorker.start(workerUrl, relayTls);
    extra.push('--worker-url', opts.relays.edgeToWorker.url);
  }
  if (workerCount > 1) extra.push('--workers', String(workerCount));
  const child: ChildProcess = spawn(
    process.execPath,
    [join(PROJECT_ROOT, 'bin', 'obscura.mjs'), 'up', '--state-dir', stateDir, '--as-port', String(ports.as), '--worker-port', String(ports.worker), '--edge-port', String(ports.edge), '--proxy-port', String(ports.proxy), ...extra, ...(opts.args ?? [])],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`obscura up did not get ready:\n${output}`)), 150_000);
    const check = () => {
      if (/\] ready: /.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`obscura up exited (${code}) before ready:\n${output}`));
    });
  });
  return {
    stateDir,
    proxyUrl: `http://127.0.0.1:${ports.proxy}/v1`,
    edgeUrl,
    asUrl: `https://127.0.0.1:${ports.as}`,
    workerUrl,
    workerUrls,
    caPem: pki.caPem,
    output: () => output,
    processes: descendants(child.pid!),
    parts: () => readPartsFile(stateDir),
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      child.kill(signal);
      const code = await exited;
      await opts.relays?.clientToEdge?.stop();
      await opts.relays?.edgeToWorker?.stop();
      return code;
    },
  };
}

/** Every regular file under `dir` (recursively) modified at or after `sinceMs`, skipping `skip` names. */
export function filesWrittenSince(dir: string, sinceMs: number, skip: readonly string[] = []): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const name of entries) {
      if (skip.includes(name)) continue;
      const p = join(d, name);
      let st;
      try {
        st = statSync(p, { throwIfNoEntry: false });
      } catch {
        continue;
      }
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.mtimeMs >= sinceMs - 1000) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Paths whose contents include `needle`. */
export function filesContaining(paths: readonly string[], needle: string): string[] {
  const n = Buffer.from(needle);
  return paths.filter((p) => {
    try {
      return readFileSync(p).includes(n);
    } catch {
      return false;
    }
  });
}

export const WRANGLER_HOME_LOGS = join(homedir(), '.config', '.wrangler');
