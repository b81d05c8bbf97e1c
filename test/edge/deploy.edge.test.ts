/**
 * The edge's deployment configuration: wrangler.toml builds for both environments offline, the
 * committed Env types match it, the rate limiters' periods match what Retry-After assumes, production
 * fails closed, and the API key script writes hashes (never keys) to the right binding.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { WRANGLER_ENV, wrangler } from './fixtures.ts';

const run = promisify(execFile);
const RATE_LIMIT_PERIOD_S = 60; // edge/src/rate-limit.ts

describe('wrangler.toml', () => {
  it('builds offline for the local and the production environment (deploy --dry-run)', async () => {
    const local = await wrangler(['deploy', '--dry-run', '--env=', '--outdir', mkdtempSync(join(tmpdir(), 'obscura-edge-dry-'))]);
    expect(local.stdout).toContain('env.API_KEYS');
    expect(local.stdout).toContain('env.INFERENCE_RATE_LIMITER');
    const prod = await wrangler(['deploy', '--dry-run', '--env', 'production', '--outdir', mkdtempSync(join(tmpdir(), 'obscura-edge-dry-'))]);
    expect(prod.stdout).toContain('env.UPSTREAM_MTLS');
    expect(prod.stdout).toContain('mTLS Certificate');
  }, 120_000);

  it('matches the committed Env types (edge/worker-configuration.d.ts)', async () => {
    const r = await wrangler(['types', 'edge/worker-configuration.d.ts', '--include-runtime=false', '--strict-vars=false', '--check']);
    expect(r.stdout).toContain('up to date');
  }, 60_000);

  it('declares rate limiters whose period is the one Retry-After assumes, and a fail-closed production', async () => {
    const { unstable_readConfig } = await import('wrangler');
    interface EdgeConfig {
      ratelimits: { name: string; simple: { period: number } }[];
      kv_namespaces: { binding: string }[];
      mtls_certificates: { binding: string }[];
      vars: Record<string, unknown>;
      workers_dev?: boolean;
    }
    const read = (env: string) => unstable_readConfig({ config: join(PROJECT_ROOT, 'wrangler.toml'), env }) as unknown as EdgeConfig;
    const local = read('');
    const prod = read('production');
    for (const c of [local, prod]) {
      expect(c.ratelimits.map((r) => r.name).sort()).toEqual(['INFERENCE_RATE_LIMITER', 'SERVICE_RATE_LIMITER']);
      for (const r of c.ratelimits) expect(r.simple.period).toBe(RATE_LIMIT_PERIOD_S);
      expect(c.kv_namespaces.map((k) => k.binding)).toEqual(['API_KEYS']);
    }
    expect(local.vars.API_KEYS_REQUIRED).toBe('false');
    expect(prod.vars.API_KEYS_REQUIRED).toBe('true');
    expect(prod.mtls_certificates.map((m) => m.binding)).toEqual(['UPSTREAM_MTLS']);
    expect(prod.workers_dev).toBe(false); // the Cache API does nothing on workers.dev
  });
});

describe('edge/scripts/api-key.mjs', () => {
  const script = join(PROJECT_ROOT, 'edge', 'scripts', 'api-key.mjs');

  it('hashes a key the way the edge looks it up', async () => {
    const { stdout } = await run(process.execPath, [script, 'hash', 'obk_example'], { env: WRANGLER_ENV });
    expect(stdout.trim()).toBe(`sha256:${createHash('sha256').update('obk_example').digest('hex')}`);
  });

  it('stores only the hash, in the API_KEYS binding', async () => {
    const { stdout } = await run(process.execPath, [script, 'add', '--name', 'demo', '--dry-run'], { env: WRANGLER_ENV });
    const key = /hash of (obk_\S+)\)/.exec(stdout)?.[1];
    expect(key).toBeDefined();
    const command = stdout.split('\n')[0];
    expect(command).toContain('kv key put');
    expect(command).toContain('--binding API_KEYS');
    expect(command).toContain(`sha256:${createHash('sha256').update(key!).digest('hex')}`);
    expect(command).not.toContain(key!);
  });
});
