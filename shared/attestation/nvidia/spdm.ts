/**
 * DMTF DSP0274 SPDM 1.1 GET_MEASUREMENTS request followed by its MEASUREMENTS response, as NVIDIA GPUs
 * return them for attestation (the "attestation report"). Parse only: nothing here is trusted until
 * verify.ts has checked the signature over `signedBytes`.
 */
import { ObscuraError } from '../../errors.ts';
import { fromHex } from '../../bytes.ts';
import { ByteReader } from '../byte-reader.ts';
import { parseNvidiaOpaqueData, type NvidiaOpaqueData } from './opaque-data.ts';

export const SPDM_VERSION_1_1 = 0x11;
export const SPDM_GET_MEASUREMENTS = 0xe0;
export const SPDM_MEASUREMENTS = 0x60;
export const SPDM_NONCE_BYTES = 32;
/** version, code, param1, param2, nonce, slot id: the signed form of GET_MEASUREMENTS. */
export const SPDM_GET_MEASUREMENTS_REQUEST_BYTES = 4 + SPDM_NONCE_BYTES + 1;
/** version, code, param1, param2, number of blocks, 3-byte measurement record length. */
export const SPDM_MEASUREMENTS_HEADER_BYTES = 8;
export const SPDM_MEASUREMENT_BLOCK_HEADER_BYTES = 4;
export const SPDM_DMTF_VALUE_HEADER_BYTES = 3;
/** SPDM 1.1 caps the opaque data of a MEASUREMENTS response at 1024 bytes. */
export const SPDM_OPAQUE_DATA_MAX_BYTES = 1024;
/** ECDSA P-384 signature as SPDM carries it: r || s, 48 bytes each, big-endian. */
export const ECDSA_P384_SIGNATURE_BYTES = 96;
/** NVIDIA GPUs negotiate SHA-384 as BaseHashAlgo, so every digest measurement is this long. */
export const SHA384_DIGEST_BYTES = 48;

/** Param1 of GET_MEASUREMENTS: bit 0 asks for a signature; the other bits are reserved in 1.1. */
const SIGNATURE_REQUESTED = 0x01;
/** Param2 of GET_MEASUREMENTS: 0 asks for the count only, 0xFF for every block, else one index. */
export const SPDM_MEASUREMENT_OPERATION_COUNT = 0x00;
export const SPDM_MEASUREMENT_OPERATION_ALL = 0xff;
const SLOT_ID_MASK = 0x0f;
const SLOT_ID_MAX = 7;
/** Bit 0 of MeasurementSpecification: the DMTF measurement format, the only one SPDM 1.1 defines. */
export const SPDM_MEASUREMENT_SPEC_DMTF = 0x01;
const VALUE_TYPE_RAW_BITSTREAM = 0x80;
const VALUE_TYPE_MASK = 0x7f;

/** DMTFSpecMeasurementValueType bits [6:0] defined by SPDM 1.1; larger values are reserved. */
export const DMTF_MEASUREMENT_TYPE = {
  IMMUTABLE_ROM: 0,
  MUTABLE_FIRMWARE: 1,
  HARDWARE_CONFIGURATION: 2,
  FIRMWARE_CONFIGURATION: 3,
  MEASUREMENT_MANIFEST: 4,
} as const;
const DMTF_MEASUREMENT_TYPE_MAX = DMTF_MEASUREMENT_TYPE.MEASUREMENT_MANIFEST;

export interface SpdmGetMeasurementsRequest {
  readonly version: number;
  /** 0xFF (every block) or one measurement index. */
  readonly measurementOperation: number;
  /** The requester's (verifier's) nonce: what makes the evidence fresh. */
  readonly nonce: Uint8Array;
  readonly slotId: number;
}

export interface SpdmMeasurementBlock {
  readonly index: number;
  readonly measurementSpecification: number;
  /** DMTFSpecMeasurementValueType bits [6:0]. */
  readonly valueType: number;
  /** Bit 7: the value is the raw bitstream rather than a digest of it. */
  readonly rawBitstream: boolean;
  readonly value: Uint8Array;
}

export interface SpdmMeasurementsResponse {
  readonly version: number;
  readonly slotId: number;
  readonly blocks: readonly SpdmMeasurementBlock[];
  /** The responder's (GPU's) nonce. */
  readonly nonce: Uint8Array;
  readonly opaqueData: Uint8Array;
  readonly signature: Uint8Array;
}

export interface NvidiaSpdmEvidence {
  readonly request: SpdmGetMeasurementsRequest;
  readonly response: SpdmMeasurementsResponse;
  readonly opaque: NvidiaOpaqueData;
  /** request || response without its signature: the exact bytes the signature covers. */
  readonly signedBytes: Uint8Array;
}

/** Parse the evidence as NVIDIA's tools hand it over: bytes, or their hex. */
export function parseNvidiaSpdmEvidence(evidence: Uint8Array | string): NvidiaSpdmEvidence {
  const bytes = typeof evidence === 'string' ? fromHex(evidence) : evidence;
  const reader = new ByteReader(bytes);
  const request = parseGetMeasurementsRequest(reader);
  const response = parseMeasurementsResponse(reader, request);
  reader.end('MEASUREMENTS response');
  return {
    request,
    response,
    opaque: parseNvidiaOpaqueData(response.opaqueData),
    signedBytes: bytes.subarray(0, bytes.length - ECDSA_P384_SIGNATURE_BYTES),
  };
}

function parseGetMeasurementsRequest(reader: ByteReader): SpdmGetMeasurementsRequest {
  const version = reader.u8('GET_MEASUREMENTS version');
  if (version !== SPDM_VERSION_1_1) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `GET_MEASUREMENTS: SPDM version 0x${hex2(version)}, only 1.1 is supported`);
  }
  const code = reader.u8('GET_MEASUREMENTS code');
  if (code !== SPDM_GET_MEASUREMENTS) throw malformed(`request code 0x${hex2(code)} is not GET_MEASUREMENTS`);
  const param1 = reader.u8('GET_MEASUREMENTS param1');
  if ((param1 & ~SIGNATURE_REQUESTED) !== 0) reserved('GET_MEASUREMENTS param1 bits [7:1]');
  // Unsigned measurements prove nothing, and without the request nonce they are not fresh either.
  if ((param1 & SIGNATURE_REQUESTED) === 0) throw malformed('GET_MEASUREMENTS did not request a signature');
  const measurementOperation = reader.u8('GET_MEASUREMENTS param2');
  if (measurementOperation === SPDM_MEASUREMENT_OPERATION_COUNT) {
    throw malformed('GET_MEASUREMENTS asked only for the number of measurements');
  }
  const nonce = reader.take(SPDM_NONCE_BYTES, 'GET_MEASUREMENTS nonce');
  const slot = reader.u8('GET_MEASUREMENTS slot id');
  if ((slot & ~SLOT_ID_MASK) !== 0) reserved('GET_MEASUREMENTS slot id bits [7:4]');
  if (slot > SLOT_ID_MAX) throw malformed(`GET_MEASUREMENTS slot id ${slot} is not 0..${SLOT_ID_MAX}`);
  return { version, measurementOperation, nonce, slotId: slot };
}

function parseMeasurementsResponse(reader: ByteReader, request: SpdmGetMeasurementsRequest): SpdmMeasurementsResponse {
  const version = reader.u8('MEASUREMENTS version');
  if (version !== request.version) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `MEASUREMENTS: SPDM version 0x${hex2(version)}, the request used 0x${hex2(request.version)}`);
  }
  const code = reader.u8('MEASUREMENTS code');
  if (code !== SPDM_MEASUREMENTS) throw malformed(`response code 0x${hex2(code)} is not MEASUREMENTS`);
  // Param1 carries the index count only when the request asked for the count; else it is reserved.
  if (reader.u8('MEASUREMENTS param1') !== 0) reserved('MEASUREMENTS param1');
  const param2 = reader.u8('MEASUREMENTS param2');
  if ((param2 & ~SLOT_ID_MASK) !== 0) reserved('MEASUREMENTS param2 bits [7:4]');
  if ((param2 & SLOT_ID_MASK) !== request.slotId) {
    throw malformed(`MEASUREMENTS slot id ${param2 & SLOT_ID_MASK} differs from the requested ${request.slotId}`);
  }
  const numberOfBlocks = reader.u8('MEASUREMENTS number of blocks');
  const recordLength = reader.u24('MEASUREMENTS record length');
  const blocks = parseMeasurementRecord(reader.take(recordLength, 'measurement record'));
  if (blocks.length !== numberOfBlocks) {
    throw malformed(`measurement record holds ${blocks.length} blocks, the header says ${numberOfBlocks}`);
  }
  if (request.measurementOperation !== SPDM_MEASUREMENT_OPERATION_ALL) {
    if (blocks.length !== 1 || blocks[0].index !== request.measurementOperation) {
      throw malformed(`asked for measurement index ${request.measurementOperation}, got other blocks`);
    }
  }
  const nonce = reader.take(SPDM_NONCE_BYTES, 'MEASUREMENTS nonce');
  const opaqueLength = reader.u16('MEASUREMENTS opaque length');
  if (opaqueLength > SPDM_OPAQUE_DATA_MAX_BYTES) {
    throw malformed(`opaque data of ${opaqueLength} bytes exceeds ${SPDM_OPAQUE_DATA_MAX_BYTES}`);
  }
  const opaqueData = reader.take(opaqueLength, 'MEASUREMENTS opaque data');
  if (reader.remaining !== ECDSA_P384_SIGNATURE_BYTES) {
    throw malformed(`signature must be ${ECDSA_P384_SIGNATURE_BYTES} bytes (ECDSA P-384), ${reader.remaining} left`);
  }
  const signature = reader.take(ECDSA_P384_SIGNATURE_BYTES, 'MEASUREMENTS signature');
  return { version, slotId: param2 & SLOT_ID_MASK, blocks, nonce, opaqueData, signature };
}

function parseMeasurementRecord(record: Uint8Array): SpdmMeasurementBlock[] {
  const reader = new ByteReader(record);
  const blocks: SpdmMeasurementBlock[] = [];
  const seen = new Set<number>();
  while (reader.remaining > 0) {
    const index = reader.u8('measurement block index');
    // Index 0 and 0xFF are the request's "count" and "all" operations, never a block's index.
    if (index === SPDM_MEASUREMENT_OPERATION_COUNT || index === SPDM_MEASUREMENT_OPERATION_ALL) {
      throw malformed(`measurement block index ${index} is reserved`);
    }
    if (seen.has(index)) throw malformed(`measurement block index ${index} appears twice`);
    seen.add(index);
    const measurementSpecification = reader.u8(`measurement block ${index} specification`);
    if (measurementSpecification !== SPDM_MEASUREMENT_SPEC_DMTF) {
      throw malformed(`measurement block ${index}: specification 0x${hex2(measurementSpecification)} is not DMTF`);
    }
    const size = reader.u16(`measurement block ${index} size`);
    const block = new ByteReader(reader.take(size, `measurement block ${index}`));
    const valueTypeByte = block.u8(`measurement block ${index} value type`);
    const valueType = valueTypeByte & VALUE_TYPE_MASK;
    if (valueType > DMTF_MEASUREMENT_TYPE_MAX) {
      throw malformed(`measurement block ${index}: value type ${valueType} is reserved in SPDM 1.1`);
    }
    const rawBitstream = (valueTypeByte & VALUE_TYPE_RAW_BITSTREAM) !== 0;
    const valueSize = block.u16(`measurement block ${index} value size`);
    const value = block.take(valueSize, `measurement block ${index} value`);
    block.end(`measurement block ${index}`);
    if (!rawBitstream && valueSize !== SHA384_DIGEST_BYTES) {
      throw malformed(`measurement block ${index}: a digest of ${valueSize} bytes, SHA-384 gives ${SHA384_DIGEST_BYTES}`);
    }
    blocks.push({ index, measurementSpecification, valueType, rawBitstream, value });
  }
  return blocks;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function malformed(message: string): ObscuraError {
  return new ObscuraError('ERR_MALFORMED', `SPDM: ${message}`);
}

function reserved(what: string): never {
  throw new ObscuraError('ERR_RESERVED_NONZERO', `SPDM: ${what} must be zero`);
}
