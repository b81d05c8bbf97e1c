/**
 * One AI code sandbox under gVisor. The channel directory (the socket) is a dedicated size-limited
 * tmpfs where it can be mounted (root), else a private directory under /dev/shm: in memory either way.
 * The AI code's stdout/stderr are drained and dropped, never stored; its weights arrive on stdin.
 *
 * Exec mode (`run()`, `runSandboxed()`, `obscura sandbox exec`) launches the very same bundle with the
 * very same runsc flags, but passes stdio through and runs the command to its exit: it exists so
 * anyone can audit the sandbox by running their own code in it. Only the stdio handling differs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ObscuraError } from '../../shared/errors.ts';
import type { SandboxSettings } from '../../shared/manifest/schema.ts';
import { SANDBOX_GID, SANDBOX_UID, CHANNEL_MOUNT_PATH, writeSandboxBundle } from './oci-bundle.ts';
import { runscRunArgs } from './runsc-args.ts';

// The channel tmpfs: one page, and two inodes (its root and the socket), so once the AI code has
// created its socket it can put no other file or byte there (a file written instead of the socket
// would be at most one page, in memory, and removed with the channel).
const CHANNEL_TMPFS_BYTES = 4096;
const CHANNEL_TMPFS_INODES = 2;
const SOCKET_NAME = 'ai.sock';
const STOP_GRACE_MS = 3_000;

export interface SandboxOptions {
  id: string; // container id: [a-z0-9-]
  runsc: string;
  stateDir: string; // holds runsc state and the bundle (no AI code output)
  appDir: string;
  command: string[];
  env?: Record<string, string>;
  settings: SandboxSettings;
  stdin?: Uint8Array; // bytes piped to the AI code, then EOF (the weights)
  gpu?: boolean;
}

/** Exec mode's stdio: the command's output goes to these streams, and stdin comes from `stdin`. */
export interface SandboxStdio {
  stdin?: Readable | Uint8Array; // piped in, then EOF; none: EOF at once
  stdout: Writable;
  stderr: Writable;
}

export interface SandboxExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function mountChannel(dir: string): 'tmpfs' | 'shm' {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const options = `size=${CHANNEL_TMPFS_BYTES},nr_inodes=${CHANNEL_TMPFS_INODES},mode=0700,nosuid,nodev,noexec`;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
  return r.status === 0 ? 'tmpfs' : 'shm';
}

export class Sandbox {
  readonly socketPath: string;
  private readonly channelDir: string;
  private channelKind: 'tmpfs' | 'shm' = 'shm';
  private readonly runscRoot: string;
  private child?: ChildProcess;
  private exitPromise?: Promise<SandboxExit>;

  constructor(private readonly opts: SandboxOptions) {
    this.runscRoot = join(opts.stateDir, 'runsc');
    // A tmpfs mount point if we can mount one; otherwise /dev/shm (tmpfs) so nothing touches disk.
    this.channelDir = process.getuid?.() === 0 ? join(opts.stateDir, 'channels', opts.id) : join('/dev/shm', `obscura-${process.pid}-${opts.id}`);
    this.socketPath = join(this.channelDir, SOCKET_NAME);
  }

  get exited(): Promise<SandboxExit> {
    if (!this.exitPromise) throw new ObscuraError('ERR_USAGE', 'the sandbox was not started');
    return this.exitPromise;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Worker mode: stdin gets `opts.stdin` then EOF, stdout/stderr are dropped; resolves once serving. */
  async start(readyTimeoutMs = 30_000): Promise<void> {
    const child = this.launch();
    // Drain and drop: AI code output may contain prompts and must never be stored.
    child.stdout!.resume();
    child.stderr!.resume();
    if (this.opts.stdin) child.stdin!.end(this.opts.stdin);
    else child.stdin!.end();
    await this.waitReady(readyTimeoutMs);
  }

  /**
   * Exec mode (auditing the sandbox): the same bundle and runsc flags as start(), with stdio passed
   * through; waits for the command to exit (its output flushed), then removes the container and channel.
   */
  async run(stdio: SandboxStdio): Promise<SandboxExit> {
    let child: ChildProcess;
    try {
      child = this.launch();
    } catch (e) {
      await this.stop(); // the channel may be mounted already
      throw e;
    }
    const flushed = Promise.all([child.stdout!, child.stderr!].map((s) => new Promise<void>((r) => s.once('close', () => r()))));
    child.stdout!.pipe(stdio.stdout, { end: false });
    child.stderr!.pipe(stdio.stderr, { end: false });
    const input = stdio.stdin ?? this.opts.stdin;
    if (input instanceof Uint8Array) child.stdin!.end(input);
    else if (input) input.pipe(child.stdin!);
    else child.stdin!.end();
    try {
      const exit = await this.exitPromise!;
      await flushed;
      return exit;
    } finally {
      if (input && !(input instanceof Uint8Array)) input.unpipe(child.stdin!);
      await this.stop();
    }
  }

  /** Channel, bundle and `runsc run`: shared by both modes, so exec mode is exactly the AI code's sandbox. */
  private launch(): ChildProcess {
    mkdirSync(this.runscRoot, { recursive: true, mode: 0o700 });
    this.forceDelete();
    this.releaseChannel();
    this.channelKind = process.getuid?.() === 0 ? mountChannel(this.channelDir) : 'shm';
    if (this.channelKind === 'shm') mkdirSync(this.channelDir, { recursive: true, mode: 0o700 });
    // Only the sandbox user may create the socket; the directory holds nothing else.
    if (process.getuid?.() === 0) chownSync(this.channelDir, SANDBOX_UID, SANDBOX_GID);
    else chmodSync(this.channelDir, 0o777);

    const bundleDir = join(this.opts.stateDir, 'bundles', this.opts.id);
    writeSandboxBundle({
      bundleDir,
      appDir: this.opts.appDir,
      channelDir: this.channelDir,
      command: this.opts.command,
      env: { OBSCURA_LISTEN: `${CHANNEL_MOUNT_PATH}/${SOCKET_NAME}`, ...this.opts.env },
      settings: this.opts.settings,
    });
    const child = spawn(this.opts.runsc, runscRunArgs({ stateRoot: this.runscRoot, gpu: this.opts.gpu }, bundleDir, this.opts.id), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exitPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: 127, signal: null })); // runsc could not be started
    });
    child.stdin!.on('error', () => {}); // the AI code may exit before reading all of stdin
    return child;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited: SandboxExit | undefined;
    this.exitPromise!.then((e) => (exited = e));
    while (Date.now() < deadline) {
      if (exited) throw new ObscuraError('ERR_UPSTREAM', `the AI code exited before serving (exit ${exited.code ?? exited.signal})`);
      if (existsSync(this.socketPath) && (await canConnect(this.socketPath))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new ObscuraError('ERR_UPSTREAM', `the AI code did not listen on its socket within ${timeoutMs} ms`);
  }

  /** SIGTERM, then SIGKILL after a grace period; then the container and its channel are removed. */
  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.runsc(['kill', this.opts.id, 'SIGTERM']);
      const done = await Promise.race([this.exitPromise!.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_GRACE_MS))]);
      if (!done) {
        this.runsc(['kill', '--all', this.opts.id, 'SIGKILL']);
        this.child.kill('SIGKILL');
        await this.exitPromise;
      }
    }
    this.forceDelete();
    this.releaseChannel();
  }

  /** Kill the AI code as a crash would (tests and fault runs). */
  kill(): void {
    this.runsc(['kill', '--all', this.opts.id, 'SIGKILL']);
  }

  private runsc(args: string[]): void {
    spawnSync(this.opts.runsc, [`--root=${this.runscRoot}`, ...args], { stdio: 'ignore' });
  }

  private forceDelete(): void {
    this.runsc(['delete', '--force', this.opts.id]);
  }

  private releaseChannel(): void {
    if (!existsSync(this.channelDir)) return;
    spawnSync('umount', [this.channelDir], { stdio: 'ignore' });
    rmSync(this.channelDir, { recursive: true, force: true });
  }
}

/** Whether something listens on the unix socket at `path` (the AI code is up). */
export function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Remove every sandbox left under a runsc state root (after a crash of the worker). */
export function sweepSandboxes(runsc: string, stateDir: string): number {
  const root = join(stateDir, 'runsc');
  if (!existsSync(root)) return 0;
  const list = spawnSync(runsc, [`--root=${root}`, 'list', '-q'], { encoding: 'utf8' });
  const ids = list.status === 0 ? list.stdout.split('\n').filter(Boolean) : [];
  for (const id of ids) {
    spawnSync(runsc, [`--root=${root}`, 'kill', '--all', id, 'SIGKILL'], { stdio: 'ignore' });
    spawnSync(runsc, [`--root=${root}`, 'delete', '--force', id], { stdio: 'ignore' });
  }
  const channels = join(stateDir, 'channels');
  if (existsSync(channels)) {
    for (const c of readdirSync(channels)) {
      spawnSync('umount', [join(channels, c)], { stdio: 'ignore' });
      rmSync(join(channels, c), { recursive: true, force: true });
    }
  }
  return ids.length;
}

/** Exec mode in one call: run `opts.command` in a fresh AI code sandbox with stdio passed through. */
export async function runSandboxed(opts: SandboxOptions, stdio: SandboxStdio): Promise<SandboxExit> {
  return new Sandbox(opts).run(stdio);
}

/** A sandbox exit as a shell reports it: the code, or 128 + the signal number. */
export function exitStatus(exit: SandboxExit): number {
  if (exit.code !== null) return exit.code;
  const n = exit.signal ? osConstants.signals[exit.signal] : undefined;
  return n ? 128 + n : 1;
}
