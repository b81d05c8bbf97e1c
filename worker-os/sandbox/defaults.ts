/**
 * The sandbox settings of the local deployment's AI code (what `obscura up` puts in its manifest), so
 * `obscura sandbox exec` audits exactly the sandbox the AI code gets. test/sandbox pins the two equal.
 */
import type { SandboxSettings } from '../../shared/manifest/schema.ts';

export const DEFAULT_SANDBOX_SETTINGS: Readonly<SandboxSettings> = Object.freeze({
  network: 'none',
  memoryLimitBytes: 1024 * 1024 * 1024,
  pidsLimit: 128,
  cpuQuotaPercent: 100,
  scratchBytes: 64 * 1024 * 1024,
});
