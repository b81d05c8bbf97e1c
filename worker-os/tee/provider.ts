/**
 * Where evidence comes from. On real hardware: Linux configfs-tsm (SEV-SNP or TDX) in the CVM; in the
 * local deployment: the simulated TEE, which signs real-layout SNP reports (simulated-snp.ts) or TD
 * quotes with their collateral (simulated-tdx.ts) under locally made chains.
 */
import type { Evidence } from '../../shared/attestation/evidence.ts';
import type { GpuEvidence } from '../../shared/attestation/gpu-evidence.ts';

export interface TeeProvider {
  readonly platform: Evidence['platform'];
  /** Evidence whose report_data is exactly `reportData` (64 bytes). */
  attest(reportData: Uint8Array): Promise<Evidence>;
  /**
   * A 32-byte key for sealing this guest's state, derived by the TEE from a secret only the platform
   * holds and from this guest's launch measurement (SEV-SNP: MSG_KEY_REQ with the measurement mixed
   * in; TDX: a key the guest's measured identity selects). The same image on the same machine gets the
   * same key after a restart; another measurement gets another. `purpose` separates keys by use.
   */
  sealingKey(purpose: string): Promise<Uint8Array>;
}

/**
 * Where a worker's GPU evidence comes from. On real hardware: the NVIDIA driver (NVML's attestation
 * report for each GPU in confidential-computing mode); locally: the simulated H100 (tee-sim).
 */
export interface GpuEvidenceProvider {
  readonly kind: GpuEvidence['kind'];
  /** Evidence whose SPDM requester nonce is exactly `nonce` (32 bytes). */
  attest(nonce: Uint8Array): Promise<GpuEvidence>;
}
