/**
 * ATTESTATION_REPORT (AMD SEV-SNP Firmware ABI specification, Table "ATTESTATION_REPORT
 * Structure"), versions 2 to 5: 1184 bytes, little-endian, the signature over bytes [0, 0x2A0).
 *
 * `parseSnpReport` turns bytes into a typed report at the spec's offsets and refuses any
 * reserved-must-be-zero byte that is not zero; it checks no signature. `encodeSnpReportBody` writes
 * the same layout (the simulated TEE signs its output), so the offsets live in this file only.
 */
import { isAllZero } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { type GuestPolicy, type GuestPolicyFields, decodeGuestPolicy, encodeGuestPolicy } from './guest-policy.ts';
import { type PlatformInfo, decodePlatformInfo } from './platform-info.ts';
import { type SnpCpuid, type SnpProductLine, productLineFromCpuid } from './product.ts';
import { type TcbParts, type TcbVersion, decodeTcbVersion, encodeTcbVersion, tcbLayoutOf } from './tcb.ts';

export const SNP_REPORT_SIZE_BYTES = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH_BYTES): everything before the signature field. */
export const SNP_SIGNED_LENGTH_BYTES = 0x2a0;
export const SNP_SIGNATURE_OFFSET = 0x2a0;
export const SNP_SIGNATURE_FIELD_BYTES = 0x200;
/** ECDSA r and s are each stored as a 72-byte little-endian integer. */
export const SNP_SIGNATURE_COMPONENT_BYTES = 72;
export const SNP_MIN_REPORT_VERSION = 2;
export const SNP_MAX_REPORT_VERSION = 5;
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384, the only algorithm the ABI defines. */
export const SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1;

export const FAMILY_ID_BYTES = 16;
export const IMAGE_ID_BYTES = 16;
export const REPORT_DATA_BYTES = 64;
export const MEASUREMENT_BYTES = 48;
export const HOST_DATA_BYTES = 32;
export const ID_KEY_DIGEST_BYTES = 48;
export const AUTHOR_KEY_DIGEST_BYTES = 48;
export const REPORT_ID_BYTES = 32;
export const REPORT_ID_MA_BYTES = 32;
export const CHIP_ID_BYTES = 64;

/** Field offsets in the report, in bytes, as the ABI table lists them. */
export const SNP_REPORT_OFFSETS = Object.freeze({
  version: 0x000,
  guestSvn: 0x004,
  policy: 0x008,
  familyId: 0x010,
  imageId: 0x020,
  vmpl: 0x030,
  signatureAlgo: 0x034,
  currentTcb: 0x038,
  platformInfo: 0x040,
  signerInfo: 0x048, // AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY
  reportData: 0x050,
  measurement: 0x090,
  hostData: 0x0c0,
  idKeyDigest: 0x0e0,
  authorKeyDigest: 0x110,
  reportId: 0x140,
  reportIdMa: 0x160,
  reportedTcb: 0x180,
  cpuidFamId: 0x188, // v3+
  cpuidModId: 0x189, // v3+
  cpuidStep: 0x18a, // v3+
  chipId: 0x1a0,
  committedTcb: 0x1e0,
  currentBuild: 0x1e8,
  currentMinor: 0x1e9,
  currentMajor: 0x1ea,
  committedBuild: 0x1ec,
  committedMinor: 0x1ed,
  committedMajor: 0x1ee,
  launchTcb: 0x1f0,
  launchMitVector: 0x1f8, // v5
  currentMitVector: 0x200, // v5
  signatureR: 0x2a0,
  signatureS: 0x2e8,
});

/** Reserved-must-be-zero ranges [start, end) that hold in every version. */
const RESERVED_RANGES_ALL: readonly (readonly [number, number])[] = [
  [0x04c, 0x050],
  [0x18b, 0x1a0],
  [0x1eb, 0x1ec],
  [0x1ef, 0x1f0],
  [0x208, 0x2a0],
  [0x330, 0x4a0], // the signature field beyond r and s
];

export type SnpSigningKey = 'vcek' | 'vlek' | 'none';

export interface SnpSignerInfo {
  readonly raw: number;
  /** Bit 0: AUTHOR_KEY_DIGEST holds the digest of an author key. */
  readonly authorKeyEn: boolean;
  /** Bit 1: MASK_CHIP_KEY as the host configured it. */
  readonly maskChipKey: boolean;
  /** Bits 4:2: which key signed the report (0 VCEK, 1 VLEK, 7 none). */
  readonly signingKey: SnpSigningKey;
}

export interface FirmwareVersion {
  readonly major: number;
  readonly minor: number;
  readonly build: number;
}

export interface SnpReport {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: GuestPolicy;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: TcbVersion;
  readonly platformInfo: PlatformInfo;
  readonly signerInfo: SnpSignerInfo;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: TcbVersion;
  /** v3+: the CPUID family/model/stepping of the chip; absent in v2 reports (and when zero). */
  readonly cpuid?: SnpCpuid;
  /** From the CPUID (v3+) or the caller's hint; decides the TCB layout. Absent for a v2 report without a hint. */
  readonly productLine?: SnpProductLine;
  readonly chipId: Uint8Array;
  /** CHIP_ID is all zero: the host masked it (MASK_CHIP_ID), so it cannot be matched to a VCEK hwID. */
  readonly chipIdMasked: boolean;
  readonly committedTcb: TcbVersion;
  readonly currentFirmware: FirmwareVersion;
  readonly committedFirmware: FirmwareVersion;
  readonly launchTcb: TcbVersion;
  /** v5 only. */
  readonly launchMitVector?: bigint;
  /** v5 only. */
  readonly currentMitVector?: bigint;
  /** ECDSA r and s, 72-byte little-endian, exactly as stored at 0x2A0 and 0x2E8. */
  readonly signature: { readonly r: Uint8Array; readonly s: Uint8Array };
  /** Bytes [0, 0x2A0): what the signature covers. */
  readonly signedBytes: Uint8Array;
  /** A copy of the whole report. */
  readonly raw: Uint8Array;
}

export interface ParseSnpReportOptions {
  /**
   * The product line the caller knows from the VCEK (its productName). Needed to decode TCBs of a
   * v2 report, which has no CPUID; for v3+ it must agree with the report's CPUID.
   */
  readonly productLine?: SnpProductLine;
}

function u32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function u64(b: Uint8Array, at: number): bigint {
  return (BigInt(u32(b, at + 4)) << 32n) | BigInt(u32(b, at));
}

/**
 * Parse an ATTESTATION_REPORT. Throws ObscuraError: ERR_MALFORMED (size, policy bit 17, signer
 * info), ERR_UNSUPPORTED_VERSION (version outside 2..5, signature algorithm, unknown CPU),
 * ERR_RESERVED_NONZERO (a reserved byte or bit set), ERR_VALUE_MISMATCH (CPUID vs `productLine`).
 */
export function parseSnpReport(bytes: Uint8Array, options: ParseSnpReportOptions = {}): SnpReport {
  if (!(bytes instanceof Uint8Array)) throw new ObscuraError('ERR_USAGE', 'an SNP report must be a Uint8Array');
  if (bytes.length !== SNP_REPORT_SIZE_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', `an SNP report is ${SNP_REPORT_SIZE_BYTES} bytes, got ${bytes.length}`);
  }
  const b = bytes.slice();
  const O = SNP_REPORT_OFFSETS;
  const version = u32(b, O.version);
  if (version < SNP_MIN_REPORT_VERSION || version > SNP_MAX_REPORT_VERSION) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `SNP report version ${version} is not supported (2..5)`);
  }
  const signatureAlgo = u32(b, O.signatureAlgo);
  if (signatureAlgo !== SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `SNP signature algorithm ${signatureAlgo} is not supported`);
  }

  const reserved: [number, number][] = [...RESERVED_RANGES_ALL.map(([s, e]) => [s, e] as [number, number])];
  // v2 has no CPUID bytes; before v5 the mitigation vectors are reserved.
  if (version < 3) reserved.push([0x188, 0x18b]);
  if (version < 5) reserved.push([0x1f8, 0x208]);
  for (const [start, end] of reserved) {
    if (!isAllZero(b.subarray(start, end))) {
      throw new ObscuraError('ERR_RESERVED_NONZERO', `SNP report v${version}: reserved bytes [0x${start.toString(16)}, 0x${end.toString(16)}) are not zero`);
    }
  }

  const signerInfo = decodeSignerInfo(u32(b, O.signerInfo));
  const policy = decodeGuestPolicy(u64(b, O.policy));

  let cpuid: SnpCpuid | undefined;
  let productLine = options.productLine;
  if (version >= 3) {
    const family = b[O.cpuidFamId];
    const model = b[O.cpuidModId];
    const stepping = b[O.cpuidStep];
    if (family !== 0 || model !== 0 || stepping !== 0) {
      cpuid = Object.freeze({ family, model, stepping });
      const fromCpuid = productLineFromCpuid(family, model);
      if (!fromCpuid) {
        throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `SNP report from CPU family 0x${family.toString(16)} model 0x${model.toString(16)}, not a known product line`);
      }
      if (productLine && productLine !== fromCpuid) {
        throw new ObscuraError('ERR_VALUE_MISMATCH', `SNP report CPUID says ${fromCpuid}, expected ${productLine}`);
      }
      productLine = fromCpuid;
    }
  }
  const layout = tcbLayoutOf(productLine);
  const tcbAt = (at: number) => decodeTcbVersion(b.subarray(at, at + 8), layout);
  const field = (at: number, length: number) => b.slice(at, at + length);
  const chipId = field(O.chipId, CHIP_ID_BYTES);

  return Object.freeze({
    version,
    guestSvn: u32(b, O.guestSvn),
    policy,
    familyId: field(O.familyId, FAMILY_ID_BYTES),
    imageId: field(O.imageId, IMAGE_ID_BYTES),
    vmpl: u32(b, O.vmpl),
    signatureAlgo,
    currentTcb: tcbAt(O.currentTcb),
    platformInfo: decodePlatformInfo(u64(b, O.platformInfo)),
    signerInfo,
    reportData: field(O.reportData, REPORT_DATA_BYTES),
    measurement: field(O.measurement, MEASUREMENT_BYTES),
    hostData: field(O.hostData, HOST_DATA_BYTES),
    idKeyDigest: field(O.idKeyDigest, ID_KEY_DIGEST_BYTES),
    authorKeyDigest: field(O.authorKeyDigest, AUTHOR_KEY_DIGEST_BYTES),
    reportId: field(O.reportId, REPORT_ID_BYTES),
    reportIdMa: field(O.reportIdMa, REPORT_ID_MA_BYTES),
    reportedTcb: tcbAt(O.reportedTcb),
    ...(cpuid ? { cpuid } : {}),
    ...(productLine ? { productLine } : {}),
    chipId,
    chipIdMasked: isAllZero(chipId),
    committedTcb: tcbAt(O.committedTcb),
    currentFirmware: Object.freeze({ major: b[O.currentMajor], minor: b[O.currentMinor], build: b[O.currentBuild] }),
    committedFirmware: Object.freeze({ major: b[O.committedMajor], minor: b[O.committedMinor], build: b[O.committedBuild] }),
    launchTcb: tcbAt(O.launchTcb),
    ...(version >= 5 ? { launchMitVector: u64(b, O.launchMitVector), currentMitVector: u64(b, O.currentMitVector) } : {}),
    signature: Object.freeze({
      r: field(O.signatureR, SNP_SIGNATURE_COMPONENT_BYTES),
      s: field(O.signatureS, SNP_SIGNATURE_COMPONENT_BYTES),
    }),
    signedBytes: b.slice(0, SNP_SIGNED_LENGTH_BYTES),
    raw: b,
  });
}

function decodeSignerInfo(raw: number): SnpSignerInfo {
  if (raw >>> 5 !== 0) throw new ObscuraError('ERR_RESERVED_NONZERO', 'SNP report signer info bits 31:5 must be zero');
  const key = (raw >>> 2) & 7;
  let signingKey: SnpSigningKey;
  if (key === 0) signingKey = 'vcek';
  else if (key === 1) signingKey = 'vlek';
  else if (key === 7) signingKey = 'none';
  else throw new ObscuraError('ERR_MALFORMED', `SNP report SIGNING_KEY ${key} is reserved`);
  return Object.freeze({ raw, authorKeyEn: (raw & 1) === 1, maskChipKey: (raw & 2) === 2, signingKey });
}

function encodeSignerInfo(info: Omit<SnpSignerInfo, 'raw'>): number {
  const key = { vcek: 0, vlek: 1, none: 7 }[info.signingKey];
  if (key === undefined) throw new ObscuraError('ERR_USAGE', `unknown signing key ${String(info.signingKey)}`);
  return (info.authorKeyEn ? 1 : 0) | (info.maskChipKey ? 2 : 0) | (key << 2);
}

/**
 * The fields `encodeSnpReportBody` writes. A parsed SnpReport fits this shape, so a report can be
 * re-encoded byte for byte; TCBs and the policy given as parsed values (with `raw`) are written as is.
 */
export interface SnpReportBodyFields {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: GuestPolicy | Partial<GuestPolicyFields>;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  /** Default 1 (ECDSA P-384 SHA-384). */
  readonly signatureAlgo?: number;
  readonly currentTcb: TcbParts | TcbVersion;
  readonly platformInfo: bigint | PlatformInfo;
  readonly signerInfo: Omit<SnpSignerInfo, 'raw'>;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: TcbParts | TcbVersion;
  /** Written for version >= 3 only; required there unless `productLine` names one. */
  readonly cpuid?: SnpCpuid;
  /** Chooses the TCB layout (Turin differs); defaults to the CPUID's product line, else Milan/Genoa. */
  readonly productLine?: SnpProductLine;
  readonly chipId: Uint8Array;
  readonly committedTcb: TcbParts | TcbVersion;
  readonly currentFirmware: FirmwareVersion;
  readonly committedFirmware: FirmwareVersion;
  readonly launchTcb: TcbParts | TcbVersion;
  /** Version 5 only. */
  readonly launchMitVector?: bigint;
  readonly currentMitVector?: bigint;
}

/** Encode the signed part of a report, bytes [0, 0x2A0). Throws ERR_USAGE on a field of the wrong size or range. */
export function encodeSnpReportBody(fields: SnpReportBodyFields): Uint8Array {
  const O = SNP_REPORT_OFFSETS;
  const out = new Uint8Array(SNP_SIGNED_LENGTH_BYTES);
  const view = new DataView(out.buffer);
  const { version } = fields;
  if (!Number.isInteger(version) || version < SNP_MIN_REPORT_VERSION || version > SNP_MAX_REPORT_VERSION) {
    throw new ObscuraError('ERR_USAGE', `cannot encode SNP report version ${version}`);
  }
  const putU32 = (at: number, v: number, name: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ObscuraError('ERR_USAGE', `${name} must be a 32-bit unsigned integer`);
    view.setUint32(at, v, true);
  };
  const putU64 = (at: number, v: bigint, name: string) => {
    if (v < 0n || v >= 1n << 64n) throw new ObscuraError('ERR_USAGE', `${name} must be a 64-bit unsigned integer`);
    view.setBigUint64(at, v, true);
  };
  const putBytes = (at: number, v: Uint8Array, length: number, name: string) => {
    if (!(v instanceof Uint8Array) || v.length !== length) throw new ObscuraError('ERR_USAGE', `${name} must be ${length} bytes`);
    out.set(v, at);
  };
  const putU8 = (at: number, v: number, name: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ObscuraError('ERR_USAGE', `${name} must be 0..255`);
    out[at] = v;
  };

  const cpuidLine = fields.cpuid ? productLineFromCpuid(fields.cpuid.family, fields.cpuid.model) : undefined;
  if (fields.productLine && cpuidLine && fields.productLine !== cpuidLine) {
    throw new ObscuraError('ERR_USAGE', `CPUID says ${cpuidLine} but productLine is ${fields.productLine}`);
  }
  const productLine = fields.productLine ?? cpuidLine;
  const layout = tcbLayoutOf(productLine);
  const putTcb = (at: number, tcb: TcbParts | TcbVersion) => out.set(encodeTcbVersion(tcb, layout), at);

  putU32(O.version, version, 'version');
  putU32(O.guestSvn, fields.guestSvn, 'guestSvn');
  putU64(O.policy, encodeGuestPolicy(fields.policy), 'policy');
  putBytes(O.familyId, fields.familyId, FAMILY_ID_BYTES, 'familyId');
  putBytes(O.imageId, fields.imageId, IMAGE_ID_BYTES, 'imageId');
  putU32(O.vmpl, fields.vmpl, 'vmpl');
  putU32(O.signatureAlgo, fields.signatureAlgo ?? SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384, 'signatureAlgo');
  putTcb(O.currentTcb, fields.currentTcb);
  putU64(O.platformInfo, typeof fields.platformInfo === 'bigint' ? fields.platformInfo : fields.platformInfo.raw, 'platformInfo');
  putU32(O.signerInfo, encodeSignerInfo(fields.signerInfo), 'signerInfo');
  putBytes(O.reportData, fields.reportData, REPORT_DATA_BYTES, 'reportData');
  putBytes(O.measurement, fields.measurement, MEASUREMENT_BYTES, 'measurement');
  putBytes(O.hostData, fields.hostData, HOST_DATA_BYTES, 'hostData');
  putBytes(O.idKeyDigest, fields.idKeyDigest, ID_KEY_DIGEST_BYTES, 'idKeyDigest');
  putBytes(O.authorKeyDigest, fields.authorKeyDigest, AUTHOR_KEY_DIGEST_BYTES, 'authorKeyDigest');
  putBytes(O.reportId, fields.reportId, REPORT_ID_BYTES, 'reportId');
  putBytes(O.reportIdMa, fields.reportIdMa, REPORT_ID_MA_BYTES, 'reportIdMa');
  putTcb(O.reportedTcb, fields.reportedTcb);
  if (version >= 3) {
    const cpuid = fields.cpuid;
    if (cpuid) {
      putU8(O.cpuidFamId, cpuid.family, 'cpuid.family');
      putU8(O.cpuidModId, cpuid.model, 'cpuid.model');
      putU8(O.cpuidStep, cpuid.stepping, 'cpuid.stepping');
    }
  } else if (fields.cpuid) {
    throw new ObscuraError('ERR_USAGE', 'a version 2 report has no CPUID fields');
  }
  putBytes(O.chipId, fields.chipId, CHIP_ID_BYTES, 'chipId');
  putTcb(O.committedTcb, fields.committedTcb);
  putU8(O.currentBuild, fields.currentFirmware.build, 'currentFirmware.build');
  putU8(O.currentMinor, fields.currentFirmware.minor, 'currentFirmware.minor');
  putU8(O.currentMajor, fields.currentFirmware.major, 'currentFirmware.major');
  putU8(O.committedBuild, fields.committedFirmware.build, 'committedFirmware.build');
  putU8(O.committedMinor, fields.committedFirmware.minor, 'committedFirmware.minor');
  putU8(O.committedMajor, fields.committedFirmware.major, 'committedFirmware.major');
  putTcb(O.launchTcb, fields.launchTcb);
  if (version >= 5) {
    putU64(O.launchMitVector, fields.launchMitVector ?? 0n, 'launchMitVector');
    putU64(O.currentMitVector, fields.currentMitVector ?? 0n, 'currentMitVector');
  } else if (fields.launchMitVector || fields.currentMitVector) {
    throw new ObscuraError('ERR_USAGE', 'mitigation vectors exist in version 5 reports only');
  }
  return out;
}
