/**
 * PLATFORM_INFO (report offset 0x40): facts about the host at report time. Unknown bits are kept in
 * `raw` and not refused, since AMD adds bits here as features appear and they are not reserved-MBZ.
 */
export interface PlatformInfo {
  readonly raw: bigint;
  /** Bit 0: SMT is enabled on the host. */
  readonly smtEnabled: boolean;
  /** Bit 1: transparent SME is enabled. */
  readonly tsmeEnabled: boolean;
  /** Bit 2: the platform uses error-correcting memory. */
  readonly eccEnabled: boolean;
  /** Bit 3: RAPL is disabled. */
  readonly raplDisabled: boolean;
  /** Bit 4: ciphertext hiding is enabled for DRAM. */
  readonly ciphertextHidingEnabled: boolean;
  /** Bit 5: the RMP alias check has completed. */
  readonly aliasCheckComplete: boolean;
}

export function decodePlatformInfo(raw: bigint): PlatformInfo {
  const bit = (b: bigint) => ((raw >> b) & 1n) === 1n;
  return Object.freeze({
    raw,
    smtEnabled: bit(0n),
    tsmeEnabled: bit(1n),
    eccEnabled: bit(2n),
    raplDisabled: bit(3n),
    ciphertextHidingEnabled: bit(4n),
    aliasCheckComplete: bit(5n),
  });
}
