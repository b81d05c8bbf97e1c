/**
 * The edge for the local deployment: the worker exactly as `wrangler deploy` builds it, served by
 * workerd through the Miniflare API with the bindings of wrangler.toml. Unlike `wrangler dev`, it
 * watches no files (no reload cuts a stream) and logs no request bodies; `npx wrangler dev` remains
 * the way to develop the edge itself. Run by `obscura up`:
 *   node --import tsx edge/local-server.ts --port 8787 --tls-cert F --tls-key F --persist DIR --var K=V...
 * NODE_EXTRA_CA_CERTS must be set by the parent so workerd trusts the local CA for its upstreams.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Log, LogLevel, Miniflare } from 'miniflare';
import { PROJECT_ROOT } from '../worker-os/image-digest.ts';
import { createLogger, onShutdown } from '../worker-os/process-lifecycle.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8787' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    persist: { type: 'string' },
    var: { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});
const log = createLogger('edge');
if (!values['tls-cert'] || !values['tls-key'] || !values.persist) throw new Error('--tls-cert, --tls-key and --persist are required');

// Build as `wrangler deploy` would (offline: --dry-run), into the state directory.
const outdir = join(values.persist, 'build');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
execFileSync(join(PROJECT_ROOT, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--env=', '--outdir', outdir], {
  cwd: PROJECT_ROOT,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false', WRANGLER_HIDE_BANNER: 'true', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
});
const scriptPath = join(outdir, 'index.js');

const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
const { workerOptions } = unstable_getMiniflareWorkerOptions(join(PROJECT_ROOT, 'wrangler.toml'), '');
const vars = Object.fromEntries(
  values.var.map((kv) => {
    const i = kv.indexOf('=');
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);

const mf = new Miniflare({
  ...(workerOptions as object),
  name: 'obscura-edge',
  modules: true,
  scriptPath,
  modulesRoot: dirname(scriptPath),
  bindings: { ...(workerOptions.bindings as Record<string, unknown>), ...vars },
  host: values.host,
  port: Number(values.port),
  https: true,
  httpsCertPath: values['tls-cert'],
  httpsKeyPath: values['tls-key'],
  defaultPersistRoot: values.persist,
  cf: false, // never fetch Cloudflare's cf.json: this machine is offline
  log: new Log(LogLevel.WARN),
} as ConstructorParameters<typeof Miniflare>[0]);
const url = await mf.ready;
log({ event: 'listening', url: url.toString() });
onShutdown(() => mf.dispose(), log);
