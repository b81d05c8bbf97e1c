/**
 * The sandbox's configuration, pinned without running it: runsc's flags (the GPU path included, which
 * no machine here can run), the OCI config.json that writeSandboxBundle writes, the exec command's
 * settings equal to the local manifest's, and `obscura sandbox exec`'s argument checks.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxExecCommand } from '../../client/cli/commands/sandbox-exec.ts';
import { localManifest, SAMPLE_AI_CODE, type OwnerKey } from '../../client/cli/local-deployment/local-manifest.ts';
import { DEFAULT_SANDBOX_SETTINGS } from '../../worker-os/sandbox/defaults.ts';
import { SANDBOX_GID, SANDBOX_UID, writeSandboxBundle } from '../../worker-os/sandbox/oci-bundle.ts';
import { runscGlobalArgs, runscRunArgs } from '../../worker-os/sandbox/runsc-args.ts';
import { obscura } from './helpers.ts';

const FORBIDDEN_FLAG = /^--?(debug|strace|log-packets|pcap-log|log=|log-fd|panic-log|profile|trace|TESTONLY|allow-flag-override|net-raw|network=(host|sandbox)|host-uds=(open|all)|host-fifo|rootless|overlay)/;

describe('runsc flags', () => {
  it('are exactly --network=none --host-uds=create --oci-seccomp, with no debug, strace or packet logs', () => {
    const args = runscGlobalArgs({ stateRoot: '/state/runsc' });
    expect(args).toEqual(['--root=/state/runsc', '--network=none', '--host-uds=create', '--oci-seccomp']);
    expect(args.filter((a) => FORBIDDEN_FLAG.test(a))).toEqual([]);
  });

  it('with gpu: true add nvproxy (--nvproxy --nvproxy-docker) and nothing else', () => {
    const args = runscGlobalArgs({ stateRoot: '/s', gpu: true });
    expect(args).toEqual(['--root=/s', '--network=none', '--host-uds=create', '--oci-seccomp', '--nvproxy', '--nvproxy-docker']);
    expect(args.filter((a) => FORBIDDEN_FLAG.test(a))).toEqual([]);
  });

  it('`runsc run` is the same command line in worker mode and exec mode', () => {
    expect(runscRunArgs({ stateRoot: '/s' }, '/b', 'id-1')).toEqual([...runscGlobalArgs({ stateRoot: '/s' }), 'run', '--bundle', '/b', 'id-1']);
  });
});

describe('OCI bundle', () => {
  let dir: string;
  let config: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const settings = { network: 'none' as const, memoryLimitBytes: 300 * 1024 * 1024, pidsLimit: 77, cpuQuotaPercent: 150, scratchBytes: 5 * 1024 * 1024 };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'obscura-bundle-'));
    writeSandboxBundle({ bundleDir: join(dir, 'bundle'), appDir: '/srv/app', channelDir: '/srv/channel', command: ['/usr/bin/node', '/app/server.mjs'], env: { OBSCURA_LISTEN: '/run/obscura/ai.sock' }, settings });
    config = JSON.parse(readFileSync(join(dir, 'bundle', 'config.json'), 'utf8'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has a read-only root holding only a generated /etc and mount points', () => {
    expect(config.root).toEqual({ path: 'rootfs', readonly: true });
    const rootfs = join(dir, 'bundle', 'rootfs');
    expect(readdirSync(join(rootfs, 'etc')).sort()).toEqual(['group', 'hostname', 'hosts', 'nsswitch.conf', 'passwd', 'resolv.conf']);
    expect(readFileSync(join(rootfs, 'etc', 'passwd'), 'utf8')).toBe(`root:x:0:0:root:/nonexistent:/usr/sbin/nologin\naicode:x:${SANDBOX_UID}:${SANDBOX_GID}:AI code:/tmp:/usr/sbin/nologin\n`);
    expect(readFileSync(join(rootfs, 'etc', 'resolv.conf'), 'utf8')).toBe('');
    expect(existsSync(join(rootfs, 'etc', 'shadow'))).toBe(false);
  });

  it('never binds host /etc; host paths (runtime, app) are read-only binds; the channel alone is writable', () => {
    const mounts = config.mounts as { destination: string; type: string; source: string; options?: string[] }[];
    for (const m of mounts) {
      expect(m.source === '/etc' || m.source.startsWith('/etc/') || m.destination === '/etc' || m.destination.startsWith('/etc/'), JSON.stringify(m)).toBe(false);
    }
    const binds = mounts.filter((m) => m.type === 'bind');
    for (const m of binds.filter((b) => b.destination !== '/run/obscura')) expect(m.options, m.destination).toEqual(['rbind', 'ro', 'nosuid', 'nodev']);
    expect(binds.find((m) => m.destination === '/app')?.source).toBe('/srv/app');
    expect(binds.find((m) => m.destination === '/run/obscura')).toEqual({ destination: '/run/obscura', type: 'bind', source: '/srv/channel', options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'] });
    const allowedSources = new Set(['/srv/app', '/srv/channel', '/usr', '/lib', '/lib64', '/bin', '/sbin']);
    for (const m of binds) expect(allowedSources.has(m.source), m.source).toBe(true);
    expect(binds.some((m) => m.destination === '/usr')).toBe(true);
  });

  it('has /tmp as a size-limited tmpfs and /proc, nothing else in memory', () => {
    const tmpMount = config.mounts.find((m: { destination: string }) => m.destination === '/tmp');
    expect(tmpMount).toEqual({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${settings.scratchBytes}`] });
    expect(config.mounts.filter((m: { type: string }) => m.type !== 'bind').map((m: { destination: string }) => m.destination).sort()).toEqual(['/proc', '/tmp']);
  });

  it('runs as uid/gid 65532 with no capabilities, no new privileges, no terminal, and only the given environment', () => {
    expect(config.process.user).toEqual({ uid: 65532, gid: 65532, additionalGids: [] });
    expect(config.process.capabilities).toEqual({ bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] });
    expect(config.process.noNewPrivileges).toBe(true);
    expect(config.process.terminal).toBe(false);
    expect(config.process.args).toEqual(['/usr/bin/node', '/app/server.mjs']);
    expect(config.process.env).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/tmp', 'OBSCURA_LISTEN=/run/obscura/ai.sock']);
    expect(config.annotations).toBeUndefined(); // no dev.gvisor.flag.* overrides
  });

  it('has its own PID, network, IPC, UTS and mount namespaces and the memory, pids and CPU limits', () => {
    expect(config.linux.namespaces.map((n: { type: string }) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
    expect(config.linux.namespaces.every((n: { path?: string }) => n.path === undefined)).toBe(true); // new ones, never a host one joined
    expect(config.linux.resources).toEqual({ memory: { limit: settings.memoryLimitBytes }, pids: { limit: 77 }, cpu: { period: 100_000, quota: 150_000 } });
  });

  it('refuses new user namespaces by seccomp (unshare, setns, clone with CLONE_NEWUSER)', () => {
    const rules = config.linux.seccomp.syscalls as { names: string[]; action: string; args?: { index: number; value: number; op: string }[] }[];
    expect(config.linux.seccomp.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(rules.find((r) => r.names.includes('unshare'))).toMatchObject({ names: ['unshare', 'setns'], action: 'SCMP_ACT_ERRNO' });
    expect(rules.find((r) => r.names.includes('clone'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0x10000000, valueTwo: 0x10000000, op: 'SCMP_CMP_MASKED_EQ' }] });
  });
});

describe('obscura sandbox exec', () => {
  const io = () => {
    const lines = { out: [] as string[], err: [] as string[] };
    return { lines, io: { out: (l: string) => lines.out.push(l), err: (l: string) => lines.err.push(l) } };
  };

  it("runs with the local deployment's AI code sandbox settings", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'obscura-manifest-'));
    try {
      writeFileSync(join(dir, 'model.json'), '{}');
      const owner = { id: 'o', privateKey: {} as CryptoKey, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } } satisfies OwnerKey;
      const manifest = localManifest({ localRootPem: 'root', owner, modelPath: join(dir, 'model.json') });
      expect(manifest.aiCode.find((a) => a.name === SAMPLE_AI_CODE)?.sandbox).toEqual(DEFAULT_SANDBOX_SETTINGS);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks its arguments before starting anything', async () => {
    const { io: quiet } = io();
    const app = tmpdir();
    await expect(sandboxExecCommand.run([], quiet)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    await expect(sandboxExecCommand.run(['run', '--app', app], quiet)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    await expect(sandboxExecCommand.run(['exec', '--', '/bin/true'], quiet)).rejects.toThrow(/--app DIR is required/);
    await expect(sandboxExecCommand.run(['exec', '--app', app], quiet)).rejects.toThrow(/no command given/);
    await expect(sandboxExecCommand.run(['exec', '--app', '/nonexistent-obscura', '--', '/bin/true'], quiet)).rejects.toThrow(/not a directory/);
    await expect(sandboxExecCommand.run(['exec', '--app', app, '--memory', '12x', '--', '/bin/true'], quiet)).rejects.toThrow(/--memory/);
    await expect(sandboxExecCommand.run(['exec', '--app', app, '--memory', '0', '--', '/bin/true'], quiet)).rejects.toThrow(/--memory/);
    await expect(sandboxExecCommand.run(['exec', '--app', app, '--bogus', '--', '/bin/true'], quiet)).rejects.toMatchObject({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  });

  it('--help prints the usage (and obscura --help lists the command), as a real process', async () => {
    const [help, top] = await Promise.all([obscura(['sandbox', 'exec', '--help']), obscura(['--help'])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('obscura sandbox exec --app DIR [--memory BYTES] [--json] -- CMD [ARGS...]');
    expect(help.stdout).toContain('--network=none --host-uds=create');
    expect(top.stdout).toMatch(/\n\s+sandbox\s+sandbox exec: run your own command in the AI code sandbox/);
  });
});
