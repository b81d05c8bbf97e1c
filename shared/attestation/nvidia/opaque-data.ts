/**
 * NVIDIA's opaque data in an SPDM MEASUREMENTS response: a flat list of TLVs, each a little-endian u16
 * type, a u16 length and the value. The type numbers follow NVIDIA's local_gpu_verifier (nvtrust,
 * OpaqueData). Fields whose encoding is known are decoded; every field stays available raw.
 */
import { ObscuraError } from '../../errors.ts';
import { toHex } from '../../bytes.ts';
import { ByteReader } from '../byte-reader.ts';

export const NVIDIA_OPAQUE_FIELD = {
  CERT_ISSUER_NAME: 1,
  CERT_AUTHORITY_KEY_IDENTIFIER: 2,
  DRIVER_VERSION: 3,
  GPU_INFO: 4,
  SKU: 5,
  VBIOS_VERSION: 6,
  MANUFACTURER_ID: 7,
  TAMPER_DETECTION: 8,
  SMC: 9,
  VPR: 10,
  NVDEC0_STATUS: 11,
  MSRSCNT: 12,
  CPRINFO: 13,
  BOARD_ID: 14,
  CHIP_SKU: 15,
  CHIP_SKU_MOD: 16,
  PROJECT: 17,
  PROJECT_SKU: 18,
  PROJECT_SKU_MOD: 19,
  FWID: 20,
  PROTECTED_PCIE_STATUS: 21,
  SWITCH_PDI: 22,
  FLOORSWEPT_PORTS: 23,
  POSITION_ID: 24,
  LOCK_SWITCH_STATUS: 25,
  GPU_LINK_CONN: 32,
  SYS_ENABLE_STATUS: 33,
  OPAQUE_DATA_VERSION: 34,
  CHIP_INFO: 35,
  INVALID: 255,
} as const;

export type NvidiaOpaqueFieldName = keyof typeof NVIDIA_OPAQUE_FIELD;

const FIELD_NAMES = new Map<number, NvidiaOpaqueFieldName>(
  Object.entries(NVIDIA_OPAQUE_FIELD).map(([name, type]) => [type, name as NvidiaOpaqueFieldName]),
);

const TLV_HEADER_BYTES = 4;
const VBIOS_VERSION_BYTES = 8;
const BOARD_ID_BYTES = 4;
const MSRSCNT_ENTRY_BYTES = 4;

export interface NvidiaOpaqueField {
  readonly type: number;
  /** NVIDIA's name for the type, or undefined for a type this parser does not know. */
  readonly name: NvidiaOpaqueFieldName | undefined;
  readonly value: Uint8Array;
}

export interface NvidiaOpaqueData {
  /** Every TLV, in the order the GPU wrote it (types are unique). */
  readonly fields: readonly NvidiaOpaqueField[];
  /** Decoded fields, present only when the GPU sent them. */
  readonly driverVersion?: string; // e.g. "550.90.07"
  readonly vbiosVersion?: string; // e.g. "96.00.9F.00.01", as nvidia-smi prints it
  readonly boardId?: number;
  readonly chipSku?: string;
  readonly chipSkuMod?: string;
  readonly project?: string;
  readonly projectSku?: string;
  readonly projectSkuMod?: string;
  /** Firmware ID; the attestation certificate's DICE TcbInfo carries the same digest. */
  readonly fwid?: Uint8Array;
  /** Per measurement index (1-based index i at position i-1), how many times it was extended. */
  readonly measurementCounts?: readonly number[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function parseNvidiaOpaqueData(bytes: Uint8Array): NvidiaOpaqueData {
  const reader = new ByteReader(bytes);
  const fields: NvidiaOpaqueField[] = [];
  const seen = new Set<number>();
  const out: Mutable<NvidiaOpaqueData> = { fields };
  while (reader.remaining > 0) {
    if (reader.remaining < TLV_HEADER_BYTES) throw malformed('truncated TLV header');
    const type = reader.u16('opaque field type');
    const length = reader.u16('opaque field length');
    const value = reader.take(length, `opaque field ${type}`);
    // A repeated type would make the decoded view depend on which copy a reader picks.
    if (seen.has(type)) throw malformed(`opaque field type ${type} appears twice`);
    if (type === NVIDIA_OPAQUE_FIELD.INVALID) throw malformed('opaque field type 255 (INVALID)');
    seen.add(type);
    fields.push({ type, name: FIELD_NAMES.get(type), value });
    decodeInto(out, type, value);
  }
  return out;
}

function decodeInto(out: Mutable<NvidiaOpaqueData>, type: number, value: Uint8Array): void {
  switch (type) {
    case NVIDIA_OPAQUE_FIELD.DRIVER_VERSION:
      out.driverVersion = paddedAscii(value, 'driver version');
      return;
    case NVIDIA_OPAQUE_FIELD.VBIOS_VERSION:
      out.vbiosVersion = vbiosVersion(value);
      return;
    case NVIDIA_OPAQUE_FIELD.BOARD_ID:
      if (value.length !== BOARD_ID_BYTES) throw malformed(`board id must be ${BOARD_ID_BYTES} bytes`);
      out.boardId = new ByteReader(value).u32('board id');
      return;
    case NVIDIA_OPAQUE_FIELD.CHIP_SKU:
      out.chipSku = paddedAscii(value, 'chip SKU');
      return;
    case NVIDIA_OPAQUE_FIELD.CHIP_SKU_MOD:
      out.chipSkuMod = paddedAscii(value, 'chip SKU mod');
      return;
    case NVIDIA_OPAQUE_FIELD.PROJECT:
      out.project = paddedAscii(value, 'project');
      return;
    case NVIDIA_OPAQUE_FIELD.PROJECT_SKU:
      out.projectSku = paddedAscii(value, 'project SKU');
      return;
    case NVIDIA_OPAQUE_FIELD.PROJECT_SKU_MOD:
      out.projectSkuMod = paddedAscii(value, 'project SKU mod');
      return;
    case NVIDIA_OPAQUE_FIELD.FWID:
      if (value.length === 0) throw malformed('FWID is empty');
      out.fwid = value;
      return;
    case NVIDIA_OPAQUE_FIELD.MSRSCNT: {
      if (value.length % MSRSCNT_ENTRY_BYTES !== 0) throw malformed('measurement counts are not whole u32s');
      const reader = new ByteReader(value);
      const counts: number[] = [];
      while (reader.remaining > 0) counts.push(reader.u32('measurement count'));
      out.measurementCounts = counts;
      return;
    }
    default:
      return; // kept raw in `fields`
  }
}

/** NUL-terminated (or NUL-padded) printable ASCII; bytes after the first NUL must all be NUL. */
function paddedAscii(value: Uint8Array, what: string): string {
  let end = value.indexOf(0);
  if (end === -1) end = value.length;
  let text = '';
  for (let i = 0; i < end; i++) {
    const c = value[i];
    if (c < 0x20 || c > 0x7e) throw malformed(`${what} has a non-printable byte`);
    text += String.fromCharCode(c);
  }
  for (let i = end; i < value.length; i++) {
    if (value[i] !== 0) throw malformed(`${what} has bytes after its terminating NUL`);
  }
  return text;
}

/**
 * The 8-byte little-endian VBIOS version prints as five groups: bytes 3, 2, 1, 0 then 4
 * (00 9f 00 96 01 .. reads "96.00.9F.00.01"), the same rendering as nvtrust and nvidia-smi.
 */
function vbiosVersion(value: Uint8Array): string {
  if (value.length !== VBIOS_VERSION_BYTES) throw malformed(`VBIOS version must be ${VBIOS_VERSION_BYTES} bytes`);
  return [value[3], value[2], value[1], value[0], value[4]]
    .map((b) => toHex(Uint8Array.of(b)).toUpperCase())
    .join('.');
}

function malformed(message: string): ObscuraError {
  return new ObscuraError('ERR_MALFORMED', `NVIDIA opaque data: ${message}`);
}
