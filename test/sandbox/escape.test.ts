/**
 * The escape battery: hostile AI code (test/sandbox/hostile/probe.mjs) tries to get out of the real
 * gVisor sandbox: network to the host's loopback (TCP, UDP, DNS), host unix sockets, files that outlive
 * it, host secrets, host processes, root. It runs three times:
 *   1. `obscura sandbox exec --app test/sandbox/hostile -- /usr/bin/node /app/probe.mjs attack ...`
 *      (a real CLI process: the audit path);
 *   2. through the worker's Sandbox class, as AI code runs (socket channel, weights on stdin, output
 *      dropped), with a host unix socket placed in its /app;
 *   3. a second CLI run that looks for what the first two left, and checks exec mode's stdio and exit code.
 * Every attempt must fail inside, and the host side must see nothing: its listeners count no connection,
 * byte or datagram, and no file on its disk holds a marker or the AI code's output.
 */
import { randomBytes, createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { DEFAULT_SANDBOX_SETTINGS } from '../../worker-os/sandbox/defaults.ts';
import { findRunsc } from '../../worker-os/sandbox/runsc.ts';
import { Sandbox } from '../../worker-os/sandbox/sandbox.ts';
import { countingStreamServer, countingUdp, HOSTILE_DIR, obscura, scanHost, type CliResult, type Counted } from './helpers.ts';

type Attempt = { escaped: boolean; detail: string };
interface Report {
  attempts: Record<string, Attempt>;
  written: string[];
  mounts: { mountPoint: string; options: string; fsType: string }[];
  pid: number;
}

const RUN_ID = randomBytes(6).toString('hex');
const MARKER = `obscura-marker-${RUN_ID}`;
const WRITE_TARGETS = ['/tmp', '/app', '/', '/etc', '/run', '/run/obscura', '/usr', '/var/tmp', '/dev', '/dev/shm', '/proc', '/sys', '/root'];
const CANARY_SEED = randomBytes(12).toString('hex');
const CANARY = `CANARY-${[...CANARY_SEED].reverse().join('')}`; // what the AI code prints; the seed alone is in its argv
const WEIGHTS = Buffer.from(`WEIGHTS-${randomBytes(16).toString('hex')}\n`.repeat(64));
const ENV_SECRET = `env-secret-${randomBytes(8).toString('hex')}`;
const HOST_SECRET = `attestation-service-secret-${randomBytes(8).toString('hex')}`;

let tmp: string;
let stamp: string;
const listeners: Record<string, Counted> = {};
const udp: Record<string, Awaited<ReturnType<typeof countingUdp>>> = {};
const hostSocketPaths: string[] = [];
let secretPath: string;
let baseConfig: Record<string, unknown>;

let cliAttack: CliResult;
let cliReport: Report;
let workerReport: Report & { weightsSha256: string };
let workerChecks: { channelEntries: string[]; channelFsType?: string; channelOptions?: string; insideChannel: string[]; canaryWhileRunning: boolean; channelGone: boolean; stateDir: string };
let secondRun: CliResult;
let cliStateLeft: string[];
let scan: Awaited<ReturnType<typeof scanHost>>;

function hostPaths(): string[] {
  return [join(tmp, 'host.sock'), `/run/obscura-escape-${RUN_ID}.sock`, `/tmp/obscura-escape-${RUN_ID}.sock`];
}

async function listenUnix(path: string): Promise<Counted> {
  rmSync(path, { force: true });
  const c = await countingStreamServer((s, ready) => s.listen(path, ready));
  chmodSync(path, 0o777); // so only the sandbox, not file permissions, stands between uid 65532 and it
  hostSocketPaths.push(path);
  return c;
}

function get(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

function mountOf(path: string): { fsType: string; superOptions: string } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== path) continue;
    const sep = f.indexOf('-');
    return { fsType: f[sep + 1], superOptions: f[sep + 3] };
  }
  return undefined;
}

function grepTree(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && needles.some((n) => readFileSync(p).includes(n))) hits.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return hits;
}

async function runWorkerSandbox(): Promise<void> {
  const runsc = findRunsc();
  if (!runsc) throw new Error('runsc is not installed (npm test runs `obscura ensure-runtime` first)');
  // The AI code's image: the probe, plus a host unix socket placed in it (--host-uds=create: the
  // sandbox may create sockets, never connect to host ones).
  const appDir = join(tmp, 'app');
  mkdirSync(appDir);
  copyFileSync(join(HOSTILE_DIR, 'probe.mjs'), join(appDir, 'probe.mjs'));
  listeners.inApp = await listenUnix(join(appDir, 'host.sock'));
  const stateDir = join(tmp, 'worker-state');
  const config = { ...baseConfig, unixSockets: [...(baseConfig.unixSockets as string[]), '/app/host.sock'], canarySeed: CANARY_SEED };
  const sandbox = new Sandbox({
    id: `escape-${RUN_ID}`,
    runsc,
    stateDir,
    appDir,
    command: ['/usr/bin/node', '/app/probe.mjs', 'serve', JSON.stringify(config)],
    settings: { ...DEFAULT_SANDBOX_SETTINGS },
    stdin: WEIGHTS,
  });
  await sandbox.start();
  try {
    const channelDir = dirname(sandbox.socketPath);
    const channelEntries = readdirSync(channelDir);
    const mount = mountOf(channelDir);
    workerReport = JSON.parse(await get(sandbox.socketPath, '/report'));
    const insideChannel = (JSON.parse(await get(sandbox.socketPath, '/channel')) as { entries: string[] }).entries;
    // The probe has printed its canary on stdout and stderr every 100 ms by now.
    const canaryWhileRunning = grepTree(stateDir, [CANARY, WEIGHTS.subarray(0, 40).toString()]).length > 0;
    workerChecks = { channelEntries, channelFsType: mount?.fsType, channelOptions: mount?.superOptions, insideChannel, canaryWhileRunning, channelGone: false, stateDir };
    await sandbox.stop();
    workerChecks.channelGone = !existsSync(channelDir) && mountOf(channelDir) === undefined;
  } finally {
    await sandbox.stop();
  }
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'obscura-escape-'));
  stamp = join(tmp, 'stamp');
  writeFileSync(stamp, '');
  // The attestation service's state, as the test's stand-in: a secret file under a state dir.
  mkdirSync(join(tmp, 'as-state'));
  secretPath = join(tmp, 'as-state', 'inference-secrets.json');
  writeFileSync(secretPath, JSON.stringify({ secret: HOST_SECRET }), { mode: 0o644 });

  listeners.tcp4 = await countingStreamServer((s, ready) => s.listen(0, '127.0.0.1', ready));
  listeners.tcp6 = await countingStreamServer((s, ready) => s.listen(0, '::1', ready));
  udp.v4 = await countingUdp('udp4');
  udp.v6 = await countingUdp('udp6');
  for (const [i, p] of hostPaths().entries()) listeners[`unix${i}`] = await listenUnix(p);
  listeners.abstract = await countingStreamServer((s, ready) => s.listen(`\0obscura-escape-${RUN_ID}`, ready));

  const port = (c: Counted) => ((c as unknown as { server: { address(): { port: number } } }).server.address().port);
  baseConfig = {
    tcp4Port: port(listeners.tcp4),
    tcp6Port: port(listeners.tcp6),
    udp4Port: udp.v4.port,
    udp6Port: udp.v6.port,
    unixSockets: [...hostPaths(), `/var/run/obscura-escape-${RUN_ID}.sock`],
    abstractName: `obscura-escape-${RUN_ID}`,
    secretFiles: [secretPath, join(PROJECT_ROOT, '.obscura', 'owner-key.jwk'), '/root/.ssh/id_rsa'],
    projectRoot: PROJECT_ROOT,
    hostPid: process.pid,
    marker: MARKER,
    writeTargets: WRITE_TARGETS,
    envSecret: ENV_SECRET,
    tmpfsBytes: DEFAULT_SANDBOX_SETTINGS.scratchBytes,
  };

  const cliStateDir = join(tmp, 'cli-state');
  const env = { OBSCURA_STATE_DIR: cliStateDir, OBSCURA_ESCAPE_SECRET: ENV_SECRET };
  const exec = (args: string[], stdin?: Uint8Array) => obscura(['sandbox', 'exec', '--app', 'test/sandbox/hostile', '--', '/usr/bin/node', '/app/probe.mjs', ...args], { env, stdin });
  // 1 and 2 at once (two cores), then 3.
  [cliAttack] = await Promise.all([exec(['attack', JSON.stringify(baseConfig)]), runWorkerSandbox()]);
  cliReport = JSON.parse(cliAttack.stdout.trim().split('\n').pop() ?? '{}');
  secondRun = await exec(['second-run', JSON.stringify({ ...baseConfig, exitCode: 42 })], WEIGHTS);
  cliStateLeft = existsSync(join(cliStateDir, 'sandbox-exec')) ? readdirSync(join(cliStateDir, 'sandbox-exec')) : [];
  scan = await scanHost(stamp, MARKER, [CANARY, WEIGHTS.subarray(0, 40).toString()]);
});

afterAll(async () => {
  for (const l of Object.values(listeners)) await l.close();
  for (const u of Object.values(udp)) u.close();
  for (const p of hostSocketPaths) rmSync(p, { force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const reports = () => [
  ['obscura sandbox exec', cliReport],
  ['Sandbox (worker mode)', workerReport],
] as const;

function expectFailed(report: Report, names: string[]) {
  for (const name of names) {
    expect(report.attempts[name], `attempt ${name} missing`).toBeDefined();
    expect(report.attempts[name].escaped, `${name}: ${report.attempts[name].detail}`).toBe(false);
  }
}

describe('gVisor sandbox escape battery (real runsc)', () => {
  it('ran the hostile program through the CLI and the Sandbox class', () => {
    expect(cliAttack.code, cliAttack.stderr).toBe(0);
    expect(Object.keys(cliReport.attempts).length).toBeGreaterThan(30);
    expect(Object.keys(workerReport.attempts)).toEqual(expect.arrayContaining(Object.keys(cliReport.attempts)));
    expect(workerReport.weightsSha256).toBe(createHash('sha256').update(WEIGHTS).digest('hex'));
  });

  it('every attempt failed', () => {
    for (const [via, report] of reports()) {
      const escaped = Object.entries(report.attempts).filter(([, a]) => a.escaped);
      expect(escaped, `${via}: ${JSON.stringify(escaped)}`).toEqual([]);
    }
  });

  it('network: no TCP, UDP, DNS or unix socket reaches the host; the only interface is lo', () => {
    for (const [, report] of reports()) {
      expectFailed(report, ['tcp-127.0.0.1', 'tcp-[::1]', 'udp-127.0.0.1', 'udp-[::1]', 'dns-lookup', 'dns-resolve-default', 'dns-resolve-host-udp', 'unix-abstract']);
      for (const p of baseConfig.unixSockets as string[]) expectFailed(report, [`unix-${p}`]);
      expect(report.attempts.interfaces.detail).toBe('lo');
      expect(report.attempts['dns-lookup'].detail).toBe('ENOTFOUND');
    }
    expectFailed(workerReport, ['unix-/app/host.sock']);
    // Refused by runsc --host-uds=create (EPERM), not by the socket's mode (it is 0777).
    expect(workerReport.attempts['unix-/app/host.sock'].detail).not.toBe('EACCES');
    for (const [name, l] of Object.entries(listeners)) expect({ name, connections: l.connections, bytes: l.bytes }).toEqual({ name, connections: 0, bytes: 0 });
    expect(udp.v4.datagrams + udp.v6.datagrams).toBe(0);
  });

  it('files: only /tmp (memory, size-limited) is writable; nothing reaches the host disk or a second run', () => {
    for (const [, report] of reports()) {
      expect(report.written).toEqual(['/tmp']);
      expect(report.attempts['write-/run/obscura'].detail).toBe('ENOSPC'); // the channel holds the socket and nothing else
      expect(report.attempts['tmp-over-size'].detail).toBe('ENOSPC');
    }
    expect(secondRun.code, secondRun.stderr).toBe(42);
    const second = JSON.parse(secondRun.stdout.trim());
    expect(second.found).toEqual({});
    expect(scan.scanned).toBeGreaterThan(0);
    expect(scan.named).toEqual([]);
  });

  it('host secrets: no /etc/shadow, no state dir, no project directory; /etc/passwd is the generated one', () => {
    for (const [, report] of reports()) {
      expectFailed(report, ['read-/etc/shadow', 'read-/proc/1/root/etc/shadow', `read-${secretPath}`, 'read-project', 'list-project', 'etc-passwd-generated']);
      expect(report.attempts[`read-${secretPath}`].detail).toBe('ENOENT');
      expect(report.attempts['read-project'].detail).toBe('ENOENT');
      expect(report.attempts['etc-passwd-generated'].detail).not.toBe(readFileSync('/etc/passwd', 'utf8'));
      expect(report.attempts['etc-passwd-generated'].detail).toContain('aicode:x:65532:65532');
    }
  });

  it('processes: /proc lists only the sandbox; the host pid cannot be signalled or read', () => {
    for (const [, report] of reports()) {
      expectFailed(report, ['proc-list', 'signal-host-pid', 'read-host-pid-environ']);
      const pids = report.attempts['proc-list'].detail.split(' | ').map((e) => Number(e.split(':')[0]));
      expect(pids).not.toContain(process.pid);
      expect(Math.max(...pids)).toBeLessThan(100);
      expect(report.pid).toBe(1); // the AI code is the sandbox's init
    }
  });

  it('identity: uid/gid 65532, no capabilities, no way to uid 0 (setuid, user namespace, mount)', () => {
    for (const [, report] of reports()) {
      expectFailed(report, ['uid', 'setuid-0', 'setgid-0', 'seteuid-0', 'capabilities', 'userns-root', 'mount']);
      expect(JSON.parse(report.attempts.uid.detail)).toEqual({ uid: 65532, euid: 65532, gid: 65532, egid: 65532, groups: [65532] });
      expect(report.attempts['userns-root'].detail).toContain('Operation not permitted');
    }
  });

  it("environment and mounts: nothing of the host's environment; read-only root, /app, /usr", () => {
    for (const [, report] of reports()) {
      expectFailed(report, ['host-env']);
      expect(report.attempts['host-env'].detail).toBe('HOME,OBSCURA_LISTEN,PATH');
      const byPoint = Object.fromEntries(report.mounts.map((m) => [m.mountPoint, m]));
      for (const ro of ['/', '/app', '/usr']) expect(byPoint[ro].options.split(',')).toContain('ro');
      expect(byPoint['/tmp'].fsType).toBe('tmpfs');
      expect(Object.keys(byPoint).sort()).toEqual(['/', '/app', '/dev', '/dev/pts', '/proc', '/run/obscura', '/sys', '/tmp', '/usr']);
    }
  });

  it('worker mode: the channel is a tmpfs holding only the socket, removed at stop', () => {
    expect(workerChecks.channelEntries).toEqual(['ai.sock']);
    expect(workerChecks.insideChannel).toEqual(['ai.sock']);
    expect(workerChecks.channelFsType).toBe('tmpfs');
    expect(workerChecks.channelOptions).toMatch(/nr_inodes=2/);
    expect(workerChecks.channelGone).toBe(true);
  });

  it("worker mode: the AI code's stdout/stderr and its weights are written nowhere on disk", () => {
    expect(workerChecks.canaryWhileRunning).toBe(false);
    expect(grepTree(workerChecks.stateDir, [CANARY, WEIGHTS.subarray(0, 40).toString()])).toEqual([]);
    expect(scan.containing).toEqual([]);
  });

  it('exec mode: stdin passed in, stdout and stderr passed out, the exit code returned, state removed', () => {
    const second = JSON.parse(secondRun.stdout.trim());
    expect(second.stdinBytes).toBe(WEIGHTS.length);
    expect(second.stdinSha256).toBe(createHash('sha256').update(WEIGHTS).digest('hex'));
    expect(secondRun.stderr).toContain('second run on stderr');
    expect(cliStateLeft).toEqual([]);
  });
});
