/**
 * Finding (and on a fresh machine, as root, installing) gVisor's runsc. Debian's package is the one
 * the local deployment uses; production uses a newer runsc with nvproxy (see worker-os/README.md).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { ObscuraError } from '../../shared/errors.ts';

export const RUNSC_INSTALL_COMMAND = 'apt-get update && apt-get install -y runsc';

export function findRunsc(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v runsc'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

/** Ensure runsc exists; install it when missing and running as root, else say the exact command. */
export function ensureRunsc(step: (line: string) => void): string {
  const found = findRunsc();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new ObscuraError('ERR_USAGE', `gVisor (runsc) is not installed; install it with: sudo sh -c '${RUNSC_INSTALL_COMMAND}'`);
  }
  step(`installing gVisor: ${RUNSC_INSTALL_COMMAND}`);
  execFileSync('sh', ['-c', RUNSC_INSTALL_COMMAND], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const installed = findRunsc();
  if (!installed) throw new ObscuraError('ERR_USAGE', `installing runsc did not put it on PATH; run: ${RUNSC_INSTALL_COMMAND}`);
  return installed;
}
