/**
 * The local deployment's TDX provider: the simulated TDX machine (worker-os/tee-sim) quoting the
 * launch measurement the process computed from its image as MRTD (so one reference value serves both
 * platforms), and shipping the collateral a real worker would fetch from Intel PCS or a PCCS.
 * Sealing keys come from the simulated machine's sealing root and that same measurement.
 */
import type { TcbLevelStatus } from '../../shared/attestation/tdx/tcb-info.ts';
import { openSimulatedTdxTee, simulatedSealingKeys } from '../tee-sim/index.ts';
import type { TeeProvider } from './provider.ts';

export async function simulatedTdxProvider(input: { hardwareDir: string; measurement: Uint8Array; platformStatus?: TcbLevelStatus }): Promise<TeeProvider> {
  const tee = await openSimulatedTdxTee({ dir: input.hardwareDir, platformStatus: input.platformStatus });
  return {
    platform: 'tdx',
    attest: (reportData) => tee.evidence({ reportData, mrTd: input.measurement }),
    sealingKey: simulatedSealingKeys(input.hardwareDir, input.measurement),
  };
}

/** The simulated TDX root of each machine this process set up, by that machine's SEV-SNP root. */
const tdxRootBySnpRoot = new Map<string, string>();

/** Create the simulated machine's TDX side (its local Intel PKI) and remember its root by the SEV-SNP root. */
export async function ensureSimulatedTdx(hardwareDir: string, snpRootPem: string): Promise<string> {
  const tee = await openSimulatedTdxTee({ dir: hardwareDir });
  tdxRootBySnpRoot.set(snpRootPem, tee.rootPem);
  return tee.rootPem;
}

/**
 * The TDX root of the simulated machine whose SEV-SNP root is `localRootPem`, when this process set
 * that machine up (ensureSimulatedHardware): how the local manifest finds it from the root it is given.
 */
export function simulatedTdxRootOf(localRootPem: string): string | undefined {
  return tdxRootBySnpRoot.get(localRootPem);
}
