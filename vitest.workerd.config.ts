import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [cloudflareTest({ miniflare: { compatibilityDate: '2026-04-26', compatibilityFlags: ['nodejs_compat'] } })],
  test: {
    include: ['test/workerd/**/*.workerd.test.ts'],
  },
});
