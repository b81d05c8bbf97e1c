/**
 * The local deployment's TEE provider: the simulated SEV-SNP TEE (worker-os/tee-sim) reporting the
 * launch measurement the process computed from its image. Everything else is the real report path.
 * Sealing keys come from the simulated machine's sealing root and that same measurement.
 */
import { deriveSimulatedSealingKey, loadOrCreateMachineSecret, openSimulatedSnpTee } from '../tee-sim/index.ts';
import type { TeeProvider } from './provider.ts';

export async function simulatedSnpProvider(input: { hardwareDir: string; measurement: Uint8Array }): Promise<TeeProvider> {
  const tee = await openSimulatedSnpTee({ dir: input.hardwareDir });
  return {
    platform: 'sev-snp',
    async attest(reportData) {
      const e = await tee.evidence({ reportData, measurement: input.measurement });
      return { platform: 'sev-snp', report: e.report, vcek: e.vcekDer, ask: e.askDer };
    },
    async sealingKey(purpose) {
      const root = await loadOrCreateMachineSecret(input.hardwareDir);
      try {
        return await deriveSimulatedSealingKey(root, input.measurement, purpose);
      } finally {
        root.fill(0);
      }
    },
  };
}

/** Create the simulated machine once (before any part opens it) and return the root to pin. */
export async function ensureSimulatedHardware(hardwareDir: string): Promise<{ localRootPem: string }> {
  const tee = await openSimulatedSnpTee({ dir: hardwareDir });
  await loadOrCreateMachineSecret(hardwareDir);
  return { localRootPem: tee.arkPem };
}
