/**
 * The attestation and protocol tests, run inside workerd (the runtime the edge uses) through
 * @cloudflare/vitest-pool-workers: `npx vitest run --config vitest.workerd.config.ts`.
 *
 * Runs test/workerd/*.workerd.test.ts (the real SEV-SNP, TDX and NVIDIA vectors and the sealed-message
 * protocol, written for workerd) and the Node suites of shared/attestation and shared/protocol
 * unchanged. workerd has no file system holding the vectors, so:
 *   - `virtual:obscura-vectors` is a module built from test/vectors at startup (build-vectors.mjs);
 *   - a test file's own `node:fs` import is redirected to test/workerd/node-fs-shim.ts, which serves
 *     reads under test/vectors from that module (only test files are redirected, never libraries).
 */
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig, type Plugin } from 'vitest/config';
import { vectorsModuleSource } from './test/workerd/build-vectors.mjs';

const ROOT = dirname(fileURLToPath(import.meta.url));
const ROOT_POSIX = ROOT.split(sep).join('/');
const VECTORS_ID = 'virtual:obscura-vectors';
const FS_SHIMS: Record<string, string> = {
  fs: resolve(ROOT, 'test/workerd/node-fs-shim.ts'),
  'fs/promises': resolve(ROOT, 'test/workerd/node-fs-promises-shim.ts'),
};

function isRepoTestFile(importer: string | undefined): boolean {
  if (!importer) return false;
  const path = importer.split('?')[0].split(sep).join('/');
  return path.startsWith(`${ROOT_POSIX}/`) && !path.includes('/node_modules/') && /\.test\.ts$/.test(path);
}

function workerdVectors(): Plugin {
  return {
    name: 'obscura-workerd-vectors',
    enforce: 'pre',
    resolveId(id) {
      if (id === VECTORS_ID) return `\0${VECTORS_ID}`;
      return undefined;
    },
    load(id) {
      if (id === `\0${VECTORS_ID}`) return vectorsModuleSource();
      return undefined;
    },
    // Node builtins never reach resolveId in vitest's module runner (they are externalised first), so
    // a test file's `node:fs` import is rewritten in its source instead.
    transform(code, id) {
      if (!isRepoTestFile(id)) return undefined;
      const rewritten = code.replace(
        /(\bfrom\s*|\bimport\s*\(\s*)(['"])(?:node:)?(fs|fs\/promises)\2/g,
        (_m, lead: string, quote: string, name: string) => `${lead}${quote}${FS_SHIMS[name]}${quote}`,
      );
      return rewritten === code ? undefined : { code: rewritten, map: null };
    },
  };
}

export default defineConfig({
  // Vector files imported with Vite's `?inline` (a data: URL) by workerd tests beside the verifiers.
  assetsInclude: ['**/*.bin', '**/*.der', '**/*.dat', '**/*.hex'],
  plugins: [
    workerdVectors(),
    cloudflareTest({
      miniflare: {
        // The edge's date (wrangler.toml); nodejs_compat for `node:buffer` and the test files' Buffer use.
        compatibilityDate: '2026-04-26',
        compatibilityFlags: ['nodejs_compat'],
      },
    }),
  ],
  test: {
    include: ['test/workerd/**/*.workerd.test.ts', 'shared/attestation/**/*.test.ts', 'shared/protocol/**/*.test.ts'],
    exclude: ['node_modules/**', '.obscura/**', '.wrangler/**'],
    testTimeout: 60_000,
    // Counted by .ci/run together with the Node run's results.
    reporters: ['default', ['json', { outputFile: 'node_modules/.cache/obscura/vitest-workerd.json' }]],
  },
});
