/**
 * The edge's tests: `npx vitest run --config vitest.edge.config.ts`.
 *
 * test/edge/*.edge.test.ts build the edge exactly as `wrangler deploy` does (--dry-run) and run that
 * bundle in workerd through the Miniflare API, with wrangler.toml's bindings (KV, rate limiters,
 * vars), against fake attestation service and worker regions on 127.0.0.1. They run in Node (the
 * fakes and the simulated TEE are Node code), so the default config (vitest.config.ts) runs them too.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/edge/**/*.test.ts'],
    exclude: ['node_modules/**', '.obscura/**', '.wrangler/**'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
