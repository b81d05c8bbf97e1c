/**
 * Reference values an SNP report is validated against (what a manifest or a client policy holds).
 * Byte values may be given as Uint8Array or hex strings. Every check that is not named here is not
 * made; the defaults refuse the dangerous guest-policy bits (DEBUG, migration agent).
 */
import type { TcbParts } from './tcb.ts';
import type { FirmwareVersion } from './report.ts';

export type BytesOrHex = Uint8Array | string;

export interface SnpReferencePolicy {
  /** Allowed launch MEASUREMENTs (48 bytes each). Required: an empty list admits nothing. */
  readonly measurements: readonly BytesOrHex[];
  /** The exact 64-byte REPORT_DATA expected (e.g. a hash binding a key and a nonce). */
  readonly reportData?: BytesOrHex;
  /** The exact 32-byte HOST_DATA expected, when the deployment sets one. */
  readonly hostData?: BytesOrHex;
  /** The VMPL the report must come from (0 for a guest without an SVSM). Unchecked when absent. */
  readonly vmpl?: number;
  /** Accept a guest whose policy allows host debugging (it can read guest memory). Default false. */
  readonly allowDebug?: boolean;
  /** Accept a guest whose policy allows a migration agent. Default false. */
  readonly allowMigrationAgent?: boolean;
  /** Accept a guest policy that allows SMT. Default true (most hosts run with SMT on). */
  readonly allowSmt?: boolean;
  /** Require the SINGLE_SOCKET policy bit. Default false. */
  readonly requireSingleSocket?: boolean;
  /** Minimum SPLs, each checked against REPORTED_TCB, CURRENT_TCB and COMMITTED_TCB. */
  readonly minimumTcb?: Partial<TcbParts>;
  /** Minimum SNP firmware, checked against the current and the committed firmware version. */
  readonly minimumFirmware?: FirmwareVersion;
  /** Minimum GUEST_SVN. */
  readonly minimumGuestSvn?: number;
  /** Keys allowed to have signed the report. Default both VCEK and VLEK. */
  readonly allowedSigningKeys?: readonly ('vcek' | 'vlek')[];
  /** Allowed CHIP_IDs (64 bytes each), to pin specific machines. Unchecked when absent. */
  readonly chipIds?: readonly BytesOrHex[];
}
