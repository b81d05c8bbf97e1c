/**
 * TDX Quoting Enclave identity, version 2 (Intel PCS "Get TDX QE Identity", id "TD_QE"): who may
 * sign TD quotes (MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES under masks) and the status of each
 * QE ISVSVN. verifyQeIdentity authenticates the document; matchQeIdentity compares a QE report to it.
 */
import { ObscuraError } from '../../errors.ts';
import { equalBytes } from '../../bytes.ts';
import { asObject, checkCollateralWindow, date, hexBytes, str, uint } from './collateral-json.ts';
import { sliceSignedMember } from './signed-json.ts';
import { verifyTcbSigned, type IntelTrust } from './tcb-signing.ts';
import { parseIsvSvnTcbLevels, type IsvSvnTcbLevel } from './tcb-info.ts';
import { SGX_ATTRIBUTES_BYTES, SGX_MEASUREMENT_BYTES, SGX_MISCSELECT_BYTES, type QeReport } from './qe-report.ts';

export const QE_IDENTITY_ID_TDX = 'TD_QE';
export const QE_IDENTITY_VERSION_2 = 2;

export interface QeIdentity {
  readonly id: 'TD_QE';
  readonly version: 2;
  readonly issueDate: Date;
  readonly nextUpdate: Date;
  readonly tcbEvaluationDataNumber: number;
  /** Byte strings in the report's (little-endian) order, so masks apply byte by byte. */
  readonly miscSelect: Uint8Array;
  readonly miscSelectMask: Uint8Array;
  readonly attributes: Uint8Array;
  readonly attributesMask: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly isvProdId: number;
  /** Served from the highest ISVSVN down. */
  readonly tcbLevels: readonly IsvSvnTcbLevel[];
}

/** Parses the `enclaveIdentity` value. Throws ERR_MALFORMED, ERR_UNSUPPORTED_VERSION. */
export function parseQeIdentity(value: unknown): QeIdentity {
  const where = 'enclaveIdentity';
  const o = asObject(value, where);
  const id = str(o, 'id', where);
  const version = uint(o, 'version', where, 0xffff);
  // Version 1 and the SGX "QE" identity describe other enclaves; a TD quote needs the TD_QE one.
  if (id !== QE_IDENTITY_ID_TDX || version !== QE_IDENTITY_VERSION_2) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `enclave identity "${id}" version ${version} is not TD_QE version 2`);
  }
  return {
    id: QE_IDENTITY_ID_TDX,
    version: QE_IDENTITY_VERSION_2,
    issueDate: date(o, 'issueDate', where),
    nextUpdate: date(o, 'nextUpdate', where),
    tcbEvaluationDataNumber: uint(o, 'tcbEvaluationDataNumber', where, 0xffffffff),
    miscSelect: hexBytes(o, 'miscselect', where, SGX_MISCSELECT_BYTES),
    miscSelectMask: hexBytes(o, 'miscselectMask', where, SGX_MISCSELECT_BYTES),
    attributes: hexBytes(o, 'attributes', where, SGX_ATTRIBUTES_BYTES),
    attributesMask: hexBytes(o, 'attributesMask', where, SGX_ATTRIBUTES_BYTES),
    mrSigner: hexBytes(o, 'mrsigner', where, SGX_MEASUREMENT_BYTES),
    isvProdId: uint(o, 'isvprodid', where, 0xffff),
    tcbLevels: parseIsvSvnTcbLevels(o, where),
  };
}

/** Verifies a QE identity document as PCS serves it and returns it parsed. */
export async function verifyQeIdentity(json: string | Uint8Array, issuerChainPem: string, trust: IntelTrust): Promise<QeIdentity> {
  const signed = sliceSignedMember(json, 'enclaveIdentity', 'QE identity');
  await verifyTcbSigned(signed, issuerChainPem, trust, 'QE identity');
  const identity = parseQeIdentity(signed.value);
  checkCollateralWindow(identity.issueDate, identity.nextUpdate, trust.at, 'QE identity');
  return identity;
}

function masked(value: Uint8Array, mask: Uint8Array): Uint8Array {
  return value.map((b, i) => b & mask[i]);
}

/**
 * Compares the (verified) QE report with the identity and returns the QE's TCB level: the first one
 * whose ISVSVN the report's reaches. Throws ERR_VALUE_MISMATCH when it is not Intel's TD
 * QE or when no level covers its ISVSVN.
 */
export function matchQeIdentity(report: QeReport, identity: QeIdentity): IsvSvnTcbLevel {
  if (!equalBytes(report.mrSigner, identity.mrSigner)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'QE report MRSIGNER is not the QE identity\'s');
  }
  if (report.isvProdId !== identity.isvProdId) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `QE report ISVPRODID ${report.isvProdId} is not ${identity.isvProdId}`);
  }
  if (!equalBytes(masked(report.miscSelect, identity.miscSelectMask), identity.miscSelect)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'QE report MISCSELECT does not match the QE identity under its mask');
  }
  if (!equalBytes(masked(report.attributes, identity.attributesMask), identity.attributes)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'QE report ATTRIBUTES do not match the QE identity under its mask');
  }
  const level = identity.tcbLevels.find((l) => report.isvSvn >= l.isvSvn);
  if (level === undefined) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `QE ISVSVN ${report.isvSvn} is below every TCB level of the QE identity`);
  }
  return level;
}
