/**
 * The local deployment's TEE provider: the simulated SEV-SNP TEE (worker-os/tee-sim) reporting the
 * launch measurement the process computed from its image. Everything else is the real report path.
 * Sealing keys come from the simulated machine's sealing root and that same measurement.
 */
import { loadOrCreateMachineSecret, openSimulatedNvidiaGpu, openSimulatedSnpTee, simulatedSealingKeys } from '../tee-sim/index.ts';
import type { TeeProvider } from './provider.ts';
import { ensureSimulatedTdx } from './simulated-tdx.ts';

export async function simulatedSnpProvider(input: { hardwareDir: string; measurement: Uint8Array }): Promise<TeeProvider> {
  const tee = await openSimulatedSnpTee({ dir: input.hardwareDir });
  return {
    platform: 'sev-snp',
    async attest(reportData) {
      const e = await tee.evidence({ reportData, measurement: input.measurement });
      return { platform: 'sev-snp', report: e.report, vcek: e.vcekDer, ask: e.askDer };
    },
    sealingKey: simulatedSealingKeys(input.hardwareDir, input.measurement),
  };
}

/** The simulated GPU root of each machine this process set up, by that machine's SEV-SNP root. */
const gpuRootBySnpRoot = new Map<string, string>();

/**
 * Create the simulated machine once (before any part opens it): its SEV-SNP TEE, TDX side, sealing
 * root and H100 GPU. Returns the roots to pin: the SEV-SNP one (ARK), the TDX one (local SGX root CA)
 * and the GPU's (device identity CA).
 */
export async function ensureSimulatedHardware(hardwareDir: string): Promise<{ localRootPem: string; tdxRootPem: string; gpuRootPem: string }> {
  const tee = await openSimulatedSnpTee({ dir: hardwareDir });
  await loadOrCreateMachineSecret(hardwareDir);
  const tdxRootPem = await ensureSimulatedTdx(hardwareDir, tee.arkPem);
  const gpu = await openSimulatedNvidiaGpu({ dir: hardwareDir });
  gpuRootBySnpRoot.set(tee.arkPem, gpu.rootPem);
  return { localRootPem: tee.arkPem, tdxRootPem, gpuRootPem: gpu.rootPem };
}

/**
 * The GPU root of the simulated machine whose SEV-SNP root is `localRootPem`, when this process set
 * that machine up (ensureSimulatedHardware): how the local manifest finds it from the root it is given.
 */
export function simulatedGpuRootOf(localRootPem: string): string | undefined {
  return gpuRootBySnpRoot.get(localRootPem);
}
