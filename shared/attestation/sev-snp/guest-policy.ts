/**
 * Guest policy (SEV-SNP Firmware ABI, "Guest Policy Structure"), the 64-bit value the guest owner
 * fixed at launch: 7:0 ABI_MINOR, 15:8 ABI_MAJOR, 16 SMT allowed, 17 reserved-must-be-one,
 * 18 MIGRATE_MA, 19 DEBUG, 20 SINGLE_SOCKET, 21 CXL_ALLOW, 22 MEM_AES_256_XTS, 23 RAPL_DIS,
 * 24 CIPHERTEXT_HIDING_DRAM, 25 PAGE_SWAP_DISABLE, 63:26 reserved-must-be-zero.
 */
import { ObscuraError } from '../../errors.ts';

export interface GuestPolicyFields {
  readonly abiMinor: number;
  readonly abiMajor: number;
  /** Bit 16: the guest may run with SMT (hyperthreading) enabled on the host. */
  readonly smt: boolean;
  /** Bit 18: a migration agent may be associated with the guest. */
  readonly migrationAgent: boolean;
  /** Bit 19: the host may debug (read and write) the guest's memory. */
  readonly debug: boolean;
  /** Bit 20: the guest may be active on one socket only. */
  readonly singleSocket: boolean;
  readonly cxlAllow: boolean;
  readonly memAes256Xts: boolean;
  readonly raplDisable: boolean;
  readonly ciphertextHiding: boolean;
  readonly pageSwapDisable: boolean;
}

export interface GuestPolicy extends GuestPolicyFields {
  readonly raw: bigint;
}

const BIT = {
  smt: 16n,
  reservedOne: 17n,
  migrationAgent: 18n,
  debug: 19n,
  singleSocket: 20n,
  cxlAllow: 21n,
  memAes256Xts: 22n,
  raplDisable: 23n,
  ciphertextHiding: 24n,
  pageSwapDisable: 25n,
} as const;
const FIRST_RESERVED_BIT = 26n;
const UINT64_MAX = (1n << 64n) - 1n;

/** Decode a policy value; throws ERR_MALFORMED (bit 17 clear) or ERR_RESERVED_NONZERO (63:26 set). */
export function decodeGuestPolicy(raw: bigint): GuestPolicy {
  if (raw < 0n || raw > UINT64_MAX) throw new ObscuraError('ERR_MALFORMED', 'guest policy is not a 64-bit value');
  if (((raw >> BIT.reservedOne) & 1n) === 0n) {
    throw new ObscuraError('ERR_MALFORMED', 'guest policy bit 17 is reserved and must be one');
  }
  if (raw >> FIRST_RESERVED_BIT !== 0n) {
    throw new ObscuraError('ERR_RESERVED_NONZERO', `guest policy bits 63:26 must be zero (policy 0x${raw.toString(16)})`);
  }
  const bit = (b: bigint) => ((raw >> b) & 1n) === 1n;
  return Object.freeze({
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(BIT.smt),
    migrationAgent: bit(BIT.migrationAgent),
    debug: bit(BIT.debug),
    singleSocket: bit(BIT.singleSocket),
    cxlAllow: bit(BIT.cxlAllow),
    memAes256Xts: bit(BIT.memAes256Xts),
    raplDisable: bit(BIT.raplDisable),
    ciphertextHiding: bit(BIT.ciphertextHiding),
    pageSwapDisable: bit(BIT.pageSwapDisable),
  });
}

/** Encode policy fields (bit 17 set as the ABI requires). A GuestPolicy's `raw` is written back exactly. */
export function encodeGuestPolicy(policy: Partial<GuestPolicyFields> | GuestPolicy): bigint {
  if ('raw' in policy && typeof policy.raw === 'bigint') return policy.raw;
  const abiMinor = policy.abiMinor ?? 0;
  const abiMajor = policy.abiMajor ?? 0;
  for (const [name, v] of [['abiMinor', abiMinor], ['abiMajor', abiMajor]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ObscuraError('ERR_USAGE', `guest policy ${name} must be 0..255`);
  }
  let raw = BigInt(abiMinor) | (BigInt(abiMajor) << 8n) | (1n << BIT.reservedOne);
  for (const name of ['smt', 'migrationAgent', 'debug', 'singleSocket', 'cxlAllow', 'memAes256Xts', 'raplDisable', 'ciphertextHiding', 'pageSwapDisable'] as const) {
    if (policy[name]) raw |= 1n << BIT[name];
  }
  return raw;
}
