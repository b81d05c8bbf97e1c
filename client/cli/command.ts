/** The shape every `obscura` subcommand has; each lives in its own file under commands/. */
export interface CliIO {
  out(line: string): void; // stdout: results (and the one JSON object with --json)
  err(line: string): void; // stderr: step lines, warnings, errors
}

export interface Command {
  name: string; // e.g. 'up' or 'verify-evidence'
  summary: string; // one line for `obscura --help`
  usage: string; // full help text for `obscura NAME --help`
  run(argv: string[], io: CliIO): Promise<number>; // resolves to the exit status
}
