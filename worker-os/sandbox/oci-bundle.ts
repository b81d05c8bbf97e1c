/**
 * The OCI runtime bundle for one AI code sandbox: config.json and a root filesystem that holds only a
 * generated /etc and empty mount points. Host paths enter read-only, and only the runtime the AI code
 * needs (/usr and the loader's /lib*), never host /etc; the only writable places are in memory.
 */
import { lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSettings } from '../../shared/manifest/schema.ts';

/** The uid/gid AI code runs as: unprivileged, and owning nothing on the host. */
export const SANDBOX_UID = 65532;
export const SANDBOX_GID = 65532;
export const CHANNEL_MOUNT_PATH = '/run/obscura';
export const APP_MOUNT_PATH = '/app';
const CPU_PERIOD_US = 100_000;
const CLONE_NEWUSER = 0x10000000;

/**
 * Applied by gVisor's Sentry (runsc --oci-seccomp): no new user namespace, where AI code would be a
 * (namespaced) uid 0 able to mount and reach more of the Sentry. clone3 needs no rule: gVisor answers
 * it ENOSYS, so libc falls back to clone, whose flags are checked here (the 2022 runsc ignores
 * errnoRet and always answers EPERM, so clone3 cannot be refused with ENOSYS by a rule).
 */
export const SANDBOX_SECCOMP = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
  syscalls: [
    { names: ['unshare', 'setns'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    { names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' }] },
  ],
} as const;

export interface SandboxBundleSpec {
  bundleDir: string;
  appDir: string; // host directory with the AI code, mounted read-only at /app
  channelDir: string; // in-memory host directory, mounted at /run/obscura: the socket lives here
  command: string[];
  env: Record<string, string>;
  settings: SandboxSettings;
}

/** Host runtime paths bound read-only; merged-/usr symlinks are recreated as symlinks instead. */
const RUNTIME_PATHS = ['/usr', '/lib', '/lib64', '/bin', '/sbin'];

function generatedEtc(): Record<string, string> {
  return {
    passwd: `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\naicode:x:${SANDBOX_UID}:${SANDBOX_GID}:AI code:/tmp:/usr/sbin/nologin\n`,
    group: `root:x:0:\naicode:x:${SANDBOX_GID}:\n`,
    hosts: '127.0.0.1 localhost\n::1 localhost\n',
    'nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
    'resolv.conf': '',
    hostname: 'aicode\n',
  };
}

export function writeSandboxBundle(spec: SandboxBundleSpec): void {
  const rootfs = join(spec.bundleDir, 'rootfs');
  rmSync(spec.bundleDir, { recursive: true, force: true });
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  for (const [name, content] of Object.entries(generatedEtc())) writeFileSync(join(rootfs, 'etc', name), content, { mode: 0o644 });
  for (const dir of ['proc', 'dev', 'tmp', 'app', 'run/obscura']) mkdirSync(join(rootfs, dir), { recursive: true });

  const mounts: object[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${spec.settings.scratchBytes}`] },
    { destination: APP_MOUNT_PATH, type: 'bind', source: spec.appDir, options: ['rbind', 'ro', 'nosuid', 'nodev'] },
    { destination: CHANNEL_MOUNT_PATH, type: 'bind', source: spec.channelDir, options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'] },
  ];
  for (const p of RUNTIME_PATHS) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(p), join(rootfs, p));
    else if (st.isDirectory()) {
      mkdirSync(join(rootfs, p), { recursive: true });
      mounts.push({ destination: p, type: 'bind', source: p, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
    }
  }

  const config = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: SANDBOX_UID, gid: SANDBOX_GID, additionalGids: [] },
      args: spec.command,
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/tmp', ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`)],
      cwd: '/tmp',
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'aicode',
    mounts,
    linux: {
      // Own PID, network, IPC, UTS and mount namespaces: no view of host processes or interfaces.
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      resources: {
        memory: { limit: spec.settings.memoryLimitBytes },
        pids: { limit: spec.settings.pidsLimit },
        cpu: { period: CPU_PERIOD_US, quota: Math.round((CPU_PERIOD_US * spec.settings.cpuQuotaPercent) / 100) },
      },
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus'],
      seccomp: SANDBOX_SECCOMP,
    },
  };
  writeFileSync(join(spec.bundleDir, 'config.json'), JSON.stringify(config, null, 2), { mode: 0o644 });
}
