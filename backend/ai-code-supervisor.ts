/**
 * Keeps one AI code running in its sandbox: checks its image digest against the manifest before every
 * start (a mismatch never starts), hands it its weights over stdin, and restarts it when it dies.
 *
 * The image is a plain directory (local use: its directoryDigest) or an OCI image layout (its image
 * manifest digest; the layers are checked and unpacked by worker-os/oci-image.ts into the state
 * directory, afresh for every start). Start and stop are serialised; a stop holds until the next start
 * (the worker API's), and a start takes the manifest's current entry for this AI code when given one.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { ObscuraError } from '../shared/errors.ts';
import type { AiCodeEntry } from '../shared/manifest/schema.ts';
import { directoryDigest } from '../worker-os/image-digest.ts';
import { unpackOciLayout } from '../worker-os/oci-image.ts';
import type { Logger } from '../worker-os/process-lifecycle.ts';
import { Sandbox, type SandboxExit } from '../worker-os/sandbox/sandbox.ts';

const RESTART_DELAY_MS = 500;

export type AiCodeState = 'stopped' | 'starting' | 'running' | 'restarting' | 'refused';

export interface AiCodeSpec {
  entry: AiCodeEntry; // from the manifest: digest, command, sandbox settings
  appDir?: string; // the image as a directory (local use)
  ociLayout?: string; // or as an OCI image layout directory
  weights: () => Promise<Uint8Array>; // plaintext weights, handed over in memory
  env: Record<string, string>;
  /**
   * The runsc container id (default: defaultSandboxId). runsc names the sandbox's cgroups and control
   * socket after it host-wide, whatever its --root: two sandboxes with one id cannot run at once.
   */
  sandboxId?: string;
}

/** What the worker API shows of an AI code: metadata only. */
export interface AiCodeInfo {
  name: string;
  state: AiCodeState;
  restarts: number;
  imageDigest: string; // the digest the manifest allows (what was checked at the last start)
  imageKind: 'directory' | 'oci-layout';
  startedAt?: number;
  lastExit?: { code: number | null; signal: string | null; at: number };
  lastError?: string; // an error code, e.g. ERR_MEASUREMENT_NOT_ALLOWED
}

/**
 * runsc's container ids are host-wide (its control socket is named after the id), so the default id
 * includes a digest of the worker's state directory: two local deployments on one host never collide.
 */
export function defaultSandboxId(aiCodeName: string, stateDir: string): string {
  return `aicode-${aiCodeName.replace(/[^a-z0-9-]/g, '-')}-${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 8)}`;
}

export class AiCodeSupervisor {
  private sandbox?: Sandbox;
  private stopping = false;
  private queue: Promise<unknown> = Promise.resolve();
  private entry: AiCodeEntry;
  private startedAt?: number;
  private lastExit?: AiCodeInfo['lastExit'];
  private lastError?: string;
  state: AiCodeState = 'stopped';
  restarts = 0;

  constructor(
    private readonly spec: AiCodeSpec,
    private readonly opts: { runsc: string; stateDir: string; log: Logger },
  ) {
    if (!spec.appDir === !spec.ociLayout) throw new ObscuraError('ERR_USAGE', 'an AI code image is either a directory (appDir) or an OCI layout (ociLayout)');
    if (spec.sandboxId && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(spec.sandboxId)) throw new ObscuraError('ERR_USAGE', 'a sandbox id is [a-z0-9-], at most 63 characters');
    this.entry = spec.entry;
  }

  get socketPath(): string | undefined {
    return this.state === 'running' ? this.sandbox?.socketPath : undefined;
  }

  get sandboxId(): string {
    return this.spec.sandboxId || defaultSandboxId(this.name, this.opts.stateDir);
  }

  get name(): string {
    return this.spec.entry.name;
  }

  info(): AiCodeInfo {
    return {
      name: this.name,
      state: this.state,
      restarts: this.restarts,
      imageDigest: this.entry.imageDigest,
      imageKind: this.spec.ociLayout ? 'oci-layout' : 'directory',
      ...(this.startedAt !== undefined ? { startedAt: this.startedAt } : {}),
      ...(this.lastExit ? { lastExit: this.lastExit } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * Start (or, when running, leave running). `entry`: the current manifest's entry for this AI code,
   * which replaces the one it was created with; the image must have that entry's digest.
   */
  start(entry?: AiCodeEntry): Promise<void> {
    if (entry && entry.name !== this.name) return Promise.reject(new ObscuraError('ERR_USAGE', `the manifest entry is for "${entry.name}", not "${this.name}"`));
    return this.serial(async () => {
      if (entry) this.entry = entry;
      this.stopping = false;
      if (this.state === 'running') return;
      await this.launch();
    });
  }

  /** The image directory to mount, after checking its digest (an OCI layout is unpacked afresh). */
  private async verifiedAppDir(): Promise<string> {
    const allowed = this.entry.imageDigest;
    if (this.spec.ociLayout) {
      const target = join(this.opts.stateDir, 'images', this.name.replace(/[^a-z0-9._-]/g, '-'));
      const image = await unpackOciLayout(this.spec.ociLayout, { expectedDigest: allowed, targetDir: target });
      this.opts.log({ event: 'ai-code-image-unpacked', name: this.name, layers: image.layers, files: image.files, bytes: image.unpackedBytes });
      return image.rootDir;
    }
    const digest = directoryDigest(this.spec.appDir!);
    if (digest !== allowed) {
      throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `AI code "${this.name}" has digest ${digest}, but the manifest allows ${allowed}`);
    }
    return this.spec.appDir!;
  }

  private async launch(): Promise<void> {
    const previous = this.sandbox;
    this.sandbox = undefined;
    await previous?.stop();
    let appDir: string;
    try {
      appDir = await this.verifiedAppDir();
    } catch (e) {
      this.state = 'refused';
      this.lastError = (e as ObscuraError).code ?? 'error';
      this.opts.log({ event: 'ai-code-refused', name: this.name, code: this.lastError });
      throw e;
    }
    this.state = this.restarts ? 'restarting' : 'starting';
    const started = performance.now();
    const sandbox = new Sandbox({
      id: this.sandboxId,
      runsc: this.opts.runsc,
      stateDir: this.opts.stateDir,
      appDir,
      command: this.entry.command,
      env: this.spec.env,
      settings: this.entry.sandbox,
      stdin: await this.spec.weights(),
    });
    this.sandbox = sandbox;
    try {
      await sandbox.start();
    } catch (e) {
      this.sandbox = undefined;
      await sandbox.stop();
      this.state = 'stopped';
      this.lastError = (e as ObscuraError).code ?? 'error';
      throw e;
    }
    this.state = 'running';
    this.startedAt = Date.now();
    this.lastError = undefined;
    this.opts.log({ event: 'ai-code-started', name: this.name, sandboxId: this.sandboxId, ms: Math.round(performance.now() - started), restarts: this.restarts });
    void sandbox.exited.then((exit) => this.onExit(sandbox, exit));
  }

  private onExit(sandbox: Sandbox, exit: SandboxExit): void {
    if (this.stopping || this.sandbox !== sandbox) return;
    this.lastExit = { code: exit.code, signal: exit.signal, at: Date.now() };
    this.state = 'restarting';
    this.restarts++;
    this.opts.log({ event: 'ai-code-exited', name: this.name, code: exit.code, signal: exit.signal });
    setTimeout(() => {
      void this.serial(async () => {
        if (this.stopping || this.sandbox !== sandbox) return; // stopped, or started anew, meanwhile
        await this.launch();
      }).catch((e) => this.opts.log({ event: 'ai-code-restart-failed', name: this.name, code: (e as ObscuraError).code ?? 'error' }));
    }, RESTART_DELAY_MS);
  }

  /** Kill the AI code as a crash would; the supervisor restarts it (fault runs). */
  crash(): void {
    this.sandbox?.kill();
  }

  /** Stop, and stay stopped until the next start(). */
  stop(): Promise<void> {
    this.stopping = true;
    return this.serial(async () => {
      this.stopping = true;
      const sandbox = this.sandbox;
      this.sandbox = undefined;
      if (this.state !== 'refused') this.state = 'stopped';
      await sandbox?.stop();
      this.state = 'stopped';
    });
  }
}
