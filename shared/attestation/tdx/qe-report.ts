/**
 * The Quoting Enclave's report: an SGX REPORT body (sgx_report_body_t, 384 bytes), as it sits inside a
 * TDX quote's QE report certification data. Parse only: it is trusted once verify.ts has checked the
 * PCK leaf's signature over `raw`.
 */
import { ObscuraError } from '../../errors.ts';
import { ByteReader } from '../byte-reader.ts';

export const SGX_REPORT_BODY_BYTES = 384;
export const SGX_CPUSVN_BYTES = 16;
export const SGX_MISCSELECT_BYTES = 4;
export const SGX_ATTRIBUTES_BYTES = 16;
export const SGX_MEASUREMENT_BYTES = 32;
export const SGX_REPORT_DATA_BYTES = 64;

export interface QeReport {
  /** The 384 bytes exactly as quoted: what the PCK leaf signs. */
  readonly raw: Uint8Array;
  readonly cpuSvn: Uint8Array;
  /** Little-endian bytes as in the report; QE identity masks compare byte by byte. */
  readonly miscSelect: Uint8Array;
  readonly isvExtProdId: Uint8Array;
  readonly attributes: Uint8Array;
  readonly mrEnclave: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly configId: Uint8Array;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly configSvn: number;
  readonly isvFamilyId: Uint8Array;
  readonly reportData: Uint8Array;
}

/** Parses an SGX report body at the offsets of the SGX SDK's sgx_report_body_t; reserved bytes must be 0. */
export function parseQeReport(bytes: Uint8Array): QeReport {
  if (bytes.length !== SGX_REPORT_BODY_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', `QE report is ${bytes.length} bytes, expected ${SGX_REPORT_BODY_BYTES}`);
  }
  const r = new ByteReader(bytes);
  const cpuSvn = r.take(SGX_CPUSVN_BYTES, 'QE report CPUSVN'); // 0
  const miscSelect = r.take(SGX_MISCSELECT_BYTES, 'QE report MISCSELECT'); // 16
  r.reserved(12, 'QE report reserved1'); // 20
  const isvExtProdId = r.take(16, 'QE report ISVEXTPRODID'); // 32
  const attributes = r.take(SGX_ATTRIBUTES_BYTES, 'QE report ATTRIBUTES'); // 48
  const mrEnclave = r.take(SGX_MEASUREMENT_BYTES, 'QE report MRENCLAVE'); // 64
  r.reserved(32, 'QE report reserved2'); // 96
  const mrSigner = r.take(SGX_MEASUREMENT_BYTES, 'QE report MRSIGNER'); // 128
  r.reserved(32, 'QE report reserved3'); // 160
  const configId = r.take(64, 'QE report CONFIGID'); // 192
  const isvProdId = r.u16('QE report ISVPRODID'); // 256
  const isvSvn = r.u16('QE report ISVSVN'); // 258
  const configSvn = r.u16('QE report CONFIGSVN'); // 260
  r.reserved(42, 'QE report reserved4'); // 262
  const isvFamilyId = r.take(16, 'QE report ISVFAMILYID'); // 304
  const reportData = r.take(SGX_REPORT_DATA_BYTES, 'QE report REPORTDATA'); // 320
  r.end('QE report');
  return {
    raw: bytes.slice(),
    cpuSvn,
    miscSelect,
    isvExtProdId,
    attributes,
    mrEnclave,
    mrSigner,
    configId,
    isvProdId,
    isvSvn,
    configSvn,
    isvFamilyId,
    reportData,
  };
}
