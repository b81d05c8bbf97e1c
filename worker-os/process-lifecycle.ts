/**
 * How the system's Node processes live and die: one JSON log line per event (never content), a clean
 * stop on SIGINT/SIGTERM, and an exit when the parent that started them is gone, so no part is
 * left running after `obscura up` ends, however it ended.
 */
export type Logger = (event: Record<string, unknown>) => void;

export function createLogger(part: string): Logger {
  return (event) => process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), part, ...event })}\n`);
}

export function onShutdown(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const run = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    log({ event: 'stopping', reason });
    const timer = setTimeout(() => process.exit(1), 10_000);
    try {
      await stop();
    } finally {
      clearTimeout(timer);
      process.exit(0);
    }
  };
  process.on('SIGINT', () => void run('SIGINT'));
  process.on('SIGTERM', () => void run('SIGTERM'));
  const parent = Number(process.env.OBSCURA_PARENT_PID ?? 0);
  if (parent > 0) {
    setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        void run('parent exited');
      }
    }, 1_000).unref();
  }
}

/** `--name value` flags with env fallbacks and defaults: the only configuration surface of a part. */
export function flag(argv: string[], name: string, env: string | undefined, fallback?: string): string {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0 && argv[i + 1] !== undefined) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  if (env !== undefined && process.env[env]) return process.env[env]!;
  if (fallback !== undefined) return fallback;
  throw new Error(`missing --${name}${env ? ` (or ${env})` : ''}`);
}
