/**
 * `obscura ensure-runtime`: make sure the real parts the system needs are present (gVisor's runsc,
 * workerd from the npm install), installing runsc as root when missing. `npm test` runs it first.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ObscuraError } from '../../../shared/errors.ts';
import { PROJECT_ROOT } from '../../../worker-os/image-digest.ts';
import { ensureRunsc } from '../../../worker-os/sandbox/runsc.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

export const ensureRuntimeCommand: Command = {
  name: 'ensure-runtime',
  summary: 'check (and as root, install) gVisor and workerd, which the system and its tests need',
  usage: 'obscura ensure-runtime [--json]\n\nInstalls runsc with apt-get when missing and running as root; otherwise prints the command to run.',
  async run(argv, io) {
    const runsc = ensureRunsc((line) => io.err(`[obscura] ${line}`));
    const workerd = join(PROJECT_ROOT, 'node_modules', '.bin', 'workerd');
    if (!existsSync(workerd)) throw new ObscuraError('ERR_USAGE', 'workerd is missing: run npm ci');
    if (argv.includes('--json')) io.out(JSON.stringify({ runsc, workerd }));
    else io.err(`[obscura] runtime ready: runsc ${runsc}, workerd ${workerd}`);
    return EXIT.OK;
  },
};
