/**
 * The local deployment's GPU evidence provider: the simulated H100 (worker-os/tee-sim) of the simulated
 * machine, answering GET_MEASUREMENTS with the nonce the worker derived for its registration.
 */
import { openSimulatedNvidiaGpu, type SimulatedGpuOptions } from '../tee-sim/index.ts';
import type { GpuEvidenceProvider } from './provider.ts';

export async function simulatedGpuProvider(input: { hardwareDir: string } & Omit<SimulatedGpuOptions, 'dir'>): Promise<GpuEvidenceProvider> {
  const gpu = await openSimulatedNvidiaGpu({ dir: input.hardwareDir, driverVersion: input.driverVersion, vbiosVersion: input.vbiosVersion });
  return {
    kind: gpu.kind,
    async attest(nonce) {
      const e = await gpu.evidence({ nonce });
      return { kind: gpu.kind, spdm: e.spdm, certChain: [...e.certChainDer] };
    },
  };
}
