/**
 * Helpers for the sandbox tests: `obscura sandbox exec` as a real process, counting host listeners,
 * and a scan of the host's disk for what a sandbox must not leave there.
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const BIN = join(ROOT, 'bin', 'obscura.mjs');
export const HOSTILE_DIR = join(ROOT, 'test', 'sandbox', 'hostile');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `node bin/obscura.mjs ARGS`, as a user runs it. */
export function obscura(args: string[], opts: { env?: Record<string, string>; stdin?: Uint8Array; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.stdin ?? new Uint8Array(0));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 50_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** A host listener that counts every connection and byte it gets (it must get none). */
export interface Counted {
  connections: number;
  bytes: number;
  close(): Promise<void>;
}

export function countingStreamServer(listen: (s: Server, ready: () => void) => void): Promise<Counted & { server: Server }> {
  return new Promise((resolve, reject) => {
    const counted = { connections: 0, bytes: 0 };
    const server = createServer((sock) => {
      counted.connections++;
      sock.on('data', (c: Buffer) => (counted.bytes += c.length));
      sock.on('error', () => {});
    });
    server.once('error', reject);
    listen(server, () =>
      resolve({
        server,
        get connections() {
          return counted.connections;
        },
        get bytes() {
          return counted.bytes;
        },
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    );
  });
}

/** A UDP echo listener on loopback that counts datagrams. */
export function countingUdp(type: 'udp4' | 'udp6'): Promise<{ port: number; datagrams: number; close(): void }> {
  return new Promise((resolve, reject) => {
    const s: UdpSocket = createSocket(type);
    let datagrams = 0;
    s.on('message', (msg, rinfo) => {
      datagrams++;
      s.send(msg, rinfo.port, rinfo.address);
    });
    s.once('error', reject);
    s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () =>
      resolve({
        port: s.address().port,
        get datagrams() {
          return datagrams;
        },
        close: () => s.close(),
      }),
    );
  });
}

/**
 * Every file on the host's disk (the root file system and /dev/shm) changed since `stampPath` was
 * written or named like `nameNeedle`; returns those named so and those whose bytes hold a needle.
 * Skips what a sandbox cannot reach and is large: /proc, /sys, /usr (read-only inside), node_modules.
 */
export function scanHost(stampPath: string, nameNeedle: string, contentNeedles: string[]): Promise<{ named: string[]; containing: string[]; scanned: number }> {
  const args = ['/', '/dev/shm', '-xdev', '(', '-path', '/proc', '-o', '-path', '/sys', '-o', '-path', '/usr', '-o', '-path', '/work/.library', '-o', '-name', 'node_modules', ')', '-prune', '-o', '(', '-newer', stampPath, '-o', '-name', `*${nameNeedle}*`, ')', '-print0'];
  return new Promise((resolve, reject) => {
    const find = spawn('find', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    find.stdout.on('data', (c: Buffer) => chunks.push(c));
    find.once('error', reject);
    find.once('close', () => {
      const paths = Buffer.concat(chunks).toString('utf8').split('\0').filter(Boolean);
      const needles = contentNeedles.map((n) => Buffer.from(n));
      const named = paths.filter((p) => basename(p).includes(nameNeedle));
      const containing: string[] = [];
      for (const p of paths) {
        try {
          const st = statSync(p);
          if (!st.isFile() || st.size > 64 * 1024 * 1024) continue;
          const bytes = readFileSync(p);
          if (needles.some((n) => bytes.includes(n))) containing.push(p);
        } catch {
          // gone or unreadable (another process's temp file): nothing to find in it
        }
      }
      resolve({ named, containing, scanned: paths.length });
    });
  });
}
