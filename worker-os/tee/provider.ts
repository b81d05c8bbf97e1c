/**
 * Where evidence comes from. On real hardware: Linux configfs-tsm (SEV-SNP or TDX) in the CVM; in the
 * local deployment: the simulated TEE, which signs real-layout SNP reports with a locally made chain.
 */
import type { Evidence } from '../../shared/attestation/evidence.ts';

export interface TeeProvider {
  readonly platform: Evidence['platform'];
  /** Evidence whose report_data is exactly `reportData` (64 bytes). */
  attest(reportData: Uint8Array): Promise<Evidence>;
}
