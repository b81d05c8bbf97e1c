/** Every `obscura` subcommand, in the order `obscura --help` lists them. One import line each. */
import type { Command } from '../command.ts';
import { ensureRuntimeCommand } from './ensure-runtime.ts';
import { proxyCommand } from './proxy.ts';
import { upCommand } from './up.ts';
import { verifyEvidenceCommand } from './verify-evidence.ts';

export const COMMANDS: Command[] = [upCommand, proxyCommand, ensureRuntimeCommand, verifyEvidenceCommand];
