/**
 * `obscura sandbox exec`: run your own command in the AI code's gVisor sandbox (the same OCI bundle,
 * runsc flags and limits the worker uses), with stdio passed through and its exit code returned, so
 * anyone can audit the sandbox. The only difference from the AI code's sandbox: output is shown.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ObscuraError } from '../../../shared/errors.ts';
import type { SandboxSettings } from '../../../shared/manifest/schema.ts';
import { DEFAULT_SANDBOX_SETTINGS } from '../../../worker-os/sandbox/defaults.ts';
import { APP_MOUNT_PATH, CHANNEL_MOUNT_PATH, SANDBOX_UID } from '../../../worker-os/sandbox/oci-bundle.ts';
import { ensureRunsc } from '../../../worker-os/sandbox/runsc.ts';
import { runscGlobalArgs } from '../../../worker-os/sandbox/runsc-args.ts';
import { exitStatus, Sandbox } from '../../../worker-os/sandbox/sandbox.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

const usage = `obscura sandbox exec --app DIR [--memory BYTES] [--json] -- CMD [ARGS...]

Runs CMD inside the gVisor sandbox exactly as AI code runs in a worker: the same OCI bundle (read-only
root with a generated /etc, host /usr and /lib* read-only, DIR read-only at ${APP_MOUNT_PATH}, /tmp an
in-memory tmpfs of ${DEFAULT_SANDBOX_SETTINGS.scratchBytes} bytes, uid ${SANDBOX_UID}, own PID/net/IPC/UTS/mount
namespaces, memory ${DEFAULT_SANDBOX_SETTINGS.memoryLimitBytes} bytes, ${DEFAULT_SANDBOX_SETTINGS.pidsLimit} pids, ${DEFAULT_SANDBOX_SETTINGS.cpuQuotaPercent}% of a CPU), the same runsc flags
(--network=none --host-uds=create, no debug or strace logs) and the same channel (an in-memory
directory at ${CHANNEL_MOUNT_PATH}, $OBSCURA_LISTEN naming the socket to listen on). It exists so you can
audit the sandbox by running your own code in it.

Unlike the AI code's sandbox, CMD's stdout and stderr are passed through (a worker drops them) and
stdin is passed in. obscura exits with CMD's exit status (128 + N when killed by signal N; a memory
limit overrun kills the whole sandbox: 137). CMD is a path inside the sandbox, e.g. /usr/bin/node.

Options:
  --app DIR        host directory mounted read-only at ${APP_MOUNT_PATH} (required)
  --memory BYTES   memory limit instead of the AI code's default (suffixes k, m, g: powers of 1024)
  --json           after CMD exits, print one JSON line on stderr: exit status, the runsc flags and
                   the sandbox settings used (stdout stays CMD's own)
  --help

State (the runsc root and the bundle) lives in a temporary directory under $OBSCURA_STATE_DIR/sandbox-exec
when that is set, else under the system temp directory, and is removed afterwards. Needs root (runsc).`;

function parseBytes(text: string): number {
  const m = /^(\d+)([kmg])?$/i.exec(text.trim());
  const n = m ? Number(m[1]) * 1024 ** (m[2] ? 'kmg'.indexOf(m[2].toLowerCase()) + 1 : 0) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new ObscuraError('ERR_USAGE', `--memory wants a positive number of bytes, got "${text}"`);
  return n;
}

export const sandboxExecCommand: Command = {
  name: 'sandbox',
  summary: 'sandbox exec: run your own command in the AI code sandbox to audit it',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = argv;
    if (sub !== 'exec') throw new ObscuraError('ERR_USAGE', `unknown sandbox subcommand "${sub ?? ''}" (try: obscura sandbox exec --help)`);
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        app: { type: 'string' },
        memory: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return EXIT.OK;
    }
    if (!values.app) throw new ObscuraError('ERR_USAGE', '--app DIR is required');
    if (positionals.length === 0) throw new ObscuraError('ERR_USAGE', 'no command given: obscura sandbox exec --app DIR -- CMD [ARGS...]');
    const appDir = resolve(values.app);
    if (!existsSync(appDir) || !statSync(appDir).isDirectory()) throw new ObscuraError('ERR_USAGE', `--app ${values.app} is not a directory`);
    const settings: SandboxSettings = { ...DEFAULT_SANDBOX_SETTINGS };
    if (values.memory !== undefined) settings.memoryLimitBytes = parseBytes(values.memory);

    const runsc = ensureRunsc((line) => io.err(`[obscura] ${line}`));
    const base = process.env.OBSCURA_STATE_DIR ? join(resolve(process.env.OBSCURA_STATE_DIR), 'sandbox-exec') : tmpdir();
    mkdirSync(base, { recursive: true, mode: 0o700 });
    const stateDir = mkdtempSync(join(base, 'obscura-exec-'));
    const id = `exec-${randomBytes(6).toString('hex')}`;
    const sandbox = new Sandbox({ id, runsc, stateDir, appDir, command: positionals, settings });
    const onSignal = () => void sandbox.stop();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const started = performance.now();
    try {
      const exit = await sandbox.run({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
      const status = exitStatus(exit);
      if (values.json) {
        io.err(JSON.stringify({ exitStatus: status, code: exit.code, signal: exit.signal, ms: Math.round(performance.now() - started), runscFlags: runscGlobalArgs({ stateRoot: join(stateDir, 'runsc') }).filter((a) => !a.startsWith('--root=')), settings }));
      }
      return status;
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.stdin.destroy(); // stop reading the terminal, so obscura exits with CMD
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
};
