/** Every `obscura` subcommand, in the order `obscura --help` lists them. One import line each. */
import type { Command } from '../command.ts';
import { chatCommand } from './chat.ts';
import { ensureRuntimeCommand } from './ensure-runtime.ts';
import { manifestCommand } from './manifest.ts';
import { modelCommand } from './model.ts';
import { proxyCommand } from './proxy.ts';
import { sandboxExecCommand } from './sandbox-exec.ts';
import { secretCommand } from './secret.ts';
import { upCommand } from './up.ts';
import { verifyCommand } from './verify.ts';
import { verifyEvidenceCommand } from './verify-evidence.ts';
import { workerCommand } from './worker.ts';

export const COMMANDS: Command[] = [upCommand, proxyCommand, verifyCommand, chatCommand, secretCommand, ensureRuntimeCommand, verifyEvidenceCommand, sandboxExecCommand, manifestCommand, workerCommand, modelCommand];
