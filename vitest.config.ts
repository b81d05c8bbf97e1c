import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.obscura/**', '.wrangler/**', '**/*.workerd.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // The JSON results are what .ci/run counts ("N passed, N failed").
    reporters: ['default', ['json', { outputFile: 'node_modules/.cache/obscura/vitest-node.json' }]],
  },
});
