/**
 * The simulated GPU's SPDM 1.1 messages, byte for byte in the layout shared/attestation/nvidia/spdm.ts
 * parses (DMTF DSP0274: GET_MEASUREMENTS, then MEASUREMENTS; little-endian lengths), and NVIDIA's opaque
 * data TLVs (u16 type, u16 length, value). Encoding only; signing is the simulated GPU's.
 */
import { concatBytes } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import {
  SPDM_GET_MEASUREMENTS,
  SPDM_MEASUREMENT_OPERATION_ALL,
  SPDM_MEASUREMENT_SPEC_DMTF,
  SPDM_MEASUREMENTS,
  SPDM_NONCE_BYTES,
  SPDM_OPAQUE_DATA_MAX_BYTES,
  SPDM_VERSION_1_1,
} from '../../shared/attestation/nvidia/index.ts';

/** Param1 bit 0 of GET_MEASUREMENTS: a signature is requested (attestation needs one). */
const SIGNATURE_REQUESTED = 0x01;
const RAW_BITSTREAM = 0x80;
const U16_MAX = 0xffff;
const U24_MAX = 0xffffff;

export interface SpdmBlockInput {
  readonly index: number;
  /** DMTFSpecMeasurementValueType bits [6:0]. */
  readonly valueType: number;
  readonly rawBitstream?: boolean;
  readonly value: Uint8Array;
}

export interface OpaqueFieldInput {
  readonly type: number;
  readonly value: Uint8Array;
}

const u16 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff);
const u24 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff);

function check(condition: boolean, message: string): void {
  if (!condition) throw new ObscuraError('ERR_USAGE', `SPDM encoding: ${message}`);
}

/** GET_MEASUREMENTS asking for every block, signed, with the requester's (verifier's) nonce. */
export function encodeGetMeasurementsRequest(nonce: Uint8Array, slotId = 0): Uint8Array {
  check(nonce.length === SPDM_NONCE_BYTES, `the nonce must be ${SPDM_NONCE_BYTES} bytes`);
  check(Number.isInteger(slotId) && slotId >= 0 && slotId <= 7, 'slot id must be 0..7');
  return concatBytes(Uint8Array.of(SPDM_VERSION_1_1, SPDM_GET_MEASUREMENTS, SIGNATURE_REQUESTED, SPDM_MEASUREMENT_OPERATION_ALL), nonce, Uint8Array.of(slotId));
}

/** NVIDIA's opaque data: the TLVs in the order given. */
export function encodeOpaqueData(fields: readonly OpaqueFieldInput[]): Uint8Array {
  const out = concatBytes(...fields.flatMap((f) => {
    check(Number.isInteger(f.type) && f.type >= 0 && f.type <= U16_MAX && f.value.length <= U16_MAX, `opaque field ${f.type} does not fit a TLV`);
    return [u16(f.type), u16(f.value.length), f.value];
  }));
  check(out.length <= SPDM_OPAQUE_DATA_MAX_BYTES, `opaque data exceeds ${SPDM_OPAQUE_DATA_MAX_BYTES} bytes`);
  return out;
}

function encodeBlock(block: SpdmBlockInput): Uint8Array {
  check(Number.isInteger(block.index) && block.index >= 1 && block.index <= 0xfe, `block index ${block.index} is not 1..254`);
  check(Number.isInteger(block.valueType) && block.valueType >= 0 && block.valueType <= 0x7f, 'value type must be 0..127');
  const dmtf = concatBytes(Uint8Array.of(block.valueType | (block.rawBitstream ? RAW_BITSTREAM : 0)), u16(block.value.length), block.value);
  check(dmtf.length <= U16_MAX, `block ${block.index} is too large`);
  return concatBytes(Uint8Array.of(block.index, SPDM_MEASUREMENT_SPEC_DMTF), u16(dmtf.length), dmtf);
}

/** MEASUREMENTS up to (not including) its signature: the bytes the signature covers after the request. */
export function encodeMeasurementsResponseUnsigned(input: {
  blocks: readonly SpdmBlockInput[];
  responderNonce: Uint8Array;
  opaqueData: Uint8Array;
  slotId?: number;
}): Uint8Array {
  check(input.blocks.length <= 0xff, 'at most 255 blocks');
  check(input.responderNonce.length === SPDM_NONCE_BYTES, `the responder nonce must be ${SPDM_NONCE_BYTES} bytes`);
  check(input.opaqueData.length <= SPDM_OPAQUE_DATA_MAX_BYTES, `opaque data exceeds ${SPDM_OPAQUE_DATA_MAX_BYTES} bytes`);
  const record = concatBytes(...input.blocks.map(encodeBlock));
  check(record.length <= U24_MAX, 'the measurement record is too large');
  return concatBytes(
    Uint8Array.of(SPDM_VERSION_1_1, SPDM_MEASUREMENTS, 0, input.slotId ?? 0, input.blocks.length),
    u24(record.length),
    record,
    input.responderNonce,
    u16(input.opaqueData.length),
    input.opaqueData,
  );
}
