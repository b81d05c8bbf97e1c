/**
 * The `obscura` command line: one file per subcommand under commands/, registered in commands/index.ts.
 */
import { ObscuraError } from '../../shared/errors.ts';
import type { CliIO } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { EXIT, exitCodeForClass } from './exit-codes.ts';

const io: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'obscura: confidential AI inference',
    '',
    'Usage: obscura COMMAND [options]   (obscura COMMAND --help for details)',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Exit codes: 0 ok, 1 usage, 2 malformed input, 3 signature/chain, 4 validity/revocation,',
    '            5 value mismatch, 6 protocol, 7 unavailable, 10 internal.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(help());
    return name ? EXIT.OK : EXIT.USAGE;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`obscura: unknown command "${name}"\n\n${help()}`);
    return EXIT.USAGE;
  }
  // Flags after `--` belong to the program a command runs (sandbox exec), not to obscura.
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    io.out(command.usage);
    return EXIT.OK;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof ObscuraError) {
      io.err(`obscura ${name}: ${e.message} (${e.code})`);
      return exitCodeForClass(e.failureClass);
    }
    if (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`obscura ${name}: ${e.message}\n\n${command.usage}`);
      return EXIT.USAGE;
    }
    io.err(`obscura ${name}: internal error: ${(e as Error).stack ?? e}`);
    return EXIT.INTERNAL;
  }
}
