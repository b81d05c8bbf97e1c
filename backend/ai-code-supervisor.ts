/**
 * Keeps one AI code running in its sandbox: checks its image digest against the manifest before every
 * start (a mismatch never starts), hands it its weights over stdin, and restarts it when it dies.
 */
import { ObscuraError } from '../shared/errors.ts';
import type { AiCodeEntry } from '../shared/manifest/schema.ts';
import { directoryDigest } from '../worker-os/image-digest.ts';
import type { Logger } from '../worker-os/process-lifecycle.ts';
import { Sandbox } from '../worker-os/sandbox/sandbox.ts';

const RESTART_DELAY_MS = 500;

export type AiCodeState = 'stopped' | 'starting' | 'running' | 'restarting' | 'refused';

export interface AiCodeSpec {
  entry: AiCodeEntry; // from the manifest: digest, command, sandbox settings
  appDir: string;
  weights: () => Promise<Uint8Array>; // plaintext weights, handed over in memory
  env: Record<string, string>;
}

export class AiCodeSupervisor {
  private sandbox?: Sandbox;
  private stopping = false;
  state: AiCodeState = 'stopped';
  restarts = 0;

  constructor(
    private readonly spec: AiCodeSpec,
    private readonly opts: { runsc: string; stateDir: string; log: Logger },
  ) {}

  get socketPath(): string | undefined {
    return this.state === 'running' ? this.sandbox?.socketPath : undefined;
  }

  get name(): string {
    return this.spec.entry.name;
  }

  async start(): Promise<void> {
    const digest = directoryDigest(this.spec.appDir);
    if (digest !== this.spec.entry.imageDigest) {
      this.state = 'refused';
      throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `AI code "${this.spec.entry.name}" has digest ${digest}, but the manifest allows ${this.spec.entry.imageDigest}`);
    }
    this.state = this.restarts ? 'restarting' : 'starting';
    const started = performance.now();
    const sandbox = new Sandbox({
      id: `aicode-${this.spec.entry.name.replace(/[^a-z0-9-]/g, '-')}`,
      runsc: this.opts.runsc,
      stateDir: this.opts.stateDir,
      appDir: this.spec.appDir,
      command: this.spec.entry.command,
      env: this.spec.env,
      settings: this.spec.entry.sandbox,
      stdin: await this.spec.weights(),
    });
    this.sandbox = sandbox;
    await sandbox.start();
    this.state = 'running';
    this.opts.log({ event: 'ai-code-started', name: this.spec.entry.name, ms: Math.round(performance.now() - started), restarts: this.restarts });
    void sandbox.exited.then((exit) => {
      if (this.stopping || this.sandbox !== sandbox) return;
      this.state = 'restarting';
      this.restarts++;
      this.opts.log({ event: 'ai-code-exited', name: this.spec.entry.name, code: exit.code, signal: exit.signal });
      setTimeout(() => {
        if (this.stopping) return;
        void sandbox
          .stop()
          .then(() => this.start())
          .catch((e) => this.opts.log({ event: 'ai-code-restart-failed', name: this.spec.entry.name, code: (e as ObscuraError).code ?? 'error' }));
      }, RESTART_DELAY_MS);
    });
  }

  /** Kill the AI code as a crash would; the supervisor restarts it (fault runs). */
  crash(): void {
    this.sandbox?.kill();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.state = 'stopped';
    await this.sandbox?.stop();
  }
}
