/**
 * TDX TCB info, version 3 (Intel PCS "Get TDX TCB Info", /tdx/certification/v4/tcb): the TCB levels
 * Intel publishes for one FMSPC, and the TDX module's signer and attributes. verifyTcbInfo checks the
 * TCB Signing signature over the raw `tcbInfo` bytes and the issueDate/nextUpdate window.
 */
import { ObscuraError } from '../../errors.ts';
import {
  array,
  asObject,
  checkCollateralWindow,
  date,
  field,
  hexBytes,
  oneOf,
  str,
  uint,
  type JsonObject,
} from './collateral-json.ts';
import { sliceSignedMember } from './signed-json.ts';
import { verifyTcbSigned, type IntelTrust } from './tcb-signing.ts';
import { FMSPC_BYTES, PCEID_BYTES, SGX_TCB_COMPONENT_COUNT } from './pck-extensions.ts';
import { TDX_ATTRIBUTES_BYTES, TDX_MEASUREMENT_BYTES } from './quote.ts';

export const TCB_INFO_ID_TDX = 'TDX';
export const TCB_INFO_VERSION_3 = 3;

/** The statuses a TCB level of TCB info may carry. */
export const TCB_LEVEL_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const;
export type TcbLevelStatus = (typeof TCB_LEVEL_STATUSES)[number];

/** The statuses a TDX module identity's (and the QE identity's) TCB level may carry. */
export const MODULE_TCB_STATUSES = ['UpToDate', 'OutOfDate', 'Revoked'] as const;
export type ModuleTcbStatus = (typeof MODULE_TCB_STATUSES)[number];

export interface TdxTcbLevel {
  readonly sgxTcbComponents: readonly number[];
  readonly pceSvn: number;
  readonly tdxTcbComponents: readonly number[];
  readonly tcbDate: Date;
  readonly tcbStatus: TcbLevelStatus;
  readonly advisoryIds: readonly string[];
}

export interface IsvSvnTcbLevel {
  readonly isvSvn: number;
  readonly tcbDate: Date;
  readonly tcbStatus: ModuleTcbStatus;
  readonly advisoryIds: readonly string[];
}

export interface TdxModuleIdentity {
  /** "TDX_" and the module's major version in hex, e.g. "TDX_01". */
  readonly id: string;
  readonly mrSigner: Uint8Array;
  readonly attributes: Uint8Array;
  readonly attributesMask: Uint8Array;
  readonly tcbLevels: readonly IsvSvnTcbLevel[];
}

export interface TdxTcbInfo {
  readonly id: 'TDX';
  readonly version: 3;
  readonly issueDate: Date;
  readonly nextUpdate: Date;
  readonly fmspc: Uint8Array;
  readonly pceId: Uint8Array;
  readonly tcbType: number;
  readonly tcbEvaluationDataNumber: number;
  readonly tdxModule: { readonly mrSigner: Uint8Array; readonly attributes: Uint8Array; readonly attributesMask: Uint8Array };
  readonly tdxModuleIdentities?: readonly TdxModuleIdentity[];
  /** In the order served: Intel sorts them from the highest TCB down, and the matching takes the first fit. */
  readonly tcbLevels: readonly TdxTcbLevel[];
}

function advisoryIds(o: JsonObject, where: string): string[] {
  if (!Object.hasOwn(o, 'advisoryIDs')) return [];
  return array(o, 'advisoryIDs', where).map((v, i) => {
    if (typeof v !== 'string') throw new ObscuraError('ERR_MALFORMED', `${where}.advisoryIDs[${i}] is not a string`);
    return v;
  });
}

function components(o: JsonObject, key: string, where: string): number[] {
  const list = array(o, key, where);
  if (list.length !== SGX_TCB_COMPONENT_COUNT) {
    throw new ObscuraError('ERR_MALFORMED', `${where}.${key} has ${list.length} components, expected ${SGX_TCB_COMPONENT_COUNT}`);
  }
  return list.map((c, i) => uint(asObject(c, `${where}.${key}[${i}]`), 'svn', `${where}.${key}[${i}]`, 0xff));
}

export function parseIsvSvnTcbLevels(o: JsonObject, where: string): IsvSvnTcbLevel[] {
  const levels = array(o, 'tcbLevels', where).map((l, i) => {
    const w = `${where}.tcbLevels[${i}]`;
    const level = asObject(l, w);
    return {
      isvSvn: uint(asObject(field(level, 'tcb', w), `${w}.tcb`), 'isvsvn', `${w}.tcb`, 0xffff),
      tcbDate: date(level, 'tcbDate', w),
      tcbStatus: oneOf(level, 'tcbStatus', w, MODULE_TCB_STATUSES),
      advisoryIds: advisoryIds(level, w),
    };
  });
  if (levels.length === 0) throw new ObscuraError('ERR_MALFORMED', `${where}.tcbLevels is empty`);
  return levels;
}

function parseModuleIdentity(value: unknown, where: string): TdxModuleIdentity {
  const o = asObject(value, where);
  return {
    id: str(o, 'id', where),
    mrSigner: hexBytes(o, 'mrsigner', where, TDX_MEASUREMENT_BYTES),
    attributes: hexBytes(o, 'attributes', where, TDX_ATTRIBUTES_BYTES),
    attributesMask: hexBytes(o, 'attributesMask', where, TDX_ATTRIBUTES_BYTES),
    tcbLevels: parseIsvSvnTcbLevels(o, where),
  };
}

/** Parses the `tcbInfo` value (already sliced and parsed). Throws ERR_MALFORMED, ERR_UNSUPPORTED_VERSION. */
export function parseTcbInfo(value: unknown): TdxTcbInfo {
  const where = 'tcbInfo';
  const o = asObject(value, where);
  const id = str(o, 'id', where);
  const version = uint(o, 'version', where, 0xffff);
  if (id !== TCB_INFO_ID_TDX || version !== TCB_INFO_VERSION_3) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `TCB info "${id}" version ${version} is not TDX TCB info version 3`);
  }
  const tcbType = uint(o, 'tcbType', where, 0xffff);
  // Type 0 is the only one defined: compare the 16 SGX components one by one.
  if (tcbType !== 0) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `TCB info tcbType ${tcbType} is not 0`);
  const module = asObject(field(o, 'tdxModule', where), `${where}.tdxModule`);
  const levels = array(o, 'tcbLevels', where).map((l, i) => {
    const w = `${where}.tcbLevels[${i}]`;
    const level = asObject(l, w);
    const tcb = asObject(field(level, 'tcb', w), `${w}.tcb`);
    return {
      sgxTcbComponents: components(tcb, 'sgxtcbcomponents', `${w}.tcb`),
      pceSvn: uint(tcb, 'pcesvn', `${w}.tcb`, 0xffff),
      tdxTcbComponents: components(tcb, 'tdxtcbcomponents', `${w}.tcb`),
      tcbDate: date(level, 'tcbDate', w),
      tcbStatus: oneOf(level, 'tcbStatus', w, TCB_LEVEL_STATUSES),
      advisoryIds: advisoryIds(level, w),
    };
  });
  if (levels.length === 0) throw new ObscuraError('ERR_MALFORMED', `${where}.tcbLevels is empty`);
  const info: TdxTcbInfo = {
    id: TCB_INFO_ID_TDX,
    version: TCB_INFO_VERSION_3,
    issueDate: date(o, 'issueDate', where),
    nextUpdate: date(o, 'nextUpdate', where),
    fmspc: hexBytes(o, 'fmspc', where, FMSPC_BYTES),
    pceId: hexBytes(o, 'pceId', where, PCEID_BYTES),
    tcbType,
    tcbEvaluationDataNumber: uint(o, 'tcbEvaluationDataNumber', where, 0xffffffff),
    tdxModule: {
      mrSigner: hexBytes(module, 'mrsigner', `${where}.tdxModule`, TDX_MEASUREMENT_BYTES),
      attributes: hexBytes(module, 'attributes', `${where}.tdxModule`, TDX_ATTRIBUTES_BYTES),
      attributesMask: hexBytes(module, 'attributesMask', `${where}.tdxModule`, TDX_ATTRIBUTES_BYTES),
    },
    tcbLevels: levels,
  };
  if (!Object.hasOwn(o, 'tdxModuleIdentities')) return info;
  const identities = array(o, 'tdxModuleIdentities', where).map((m, i) => parseModuleIdentity(m, `${where}.tdxModuleIdentities[${i}]`));
  return { ...info, tdxModuleIdentities: identities };
}

/**
 * Verifies a TCB info document as PCS serves it: the TCB Signing chain to an injected root, the
 * signature over the raw `tcbInfo` bytes, and its window at `trust.at`. Returns it parsed.
 */
export async function verifyTcbInfo(json: string | Uint8Array, issuerChainPem: string, trust: IntelTrust): Promise<TdxTcbInfo> {
  const signed = sliceSignedMember(json, 'tcbInfo', 'TCB info');
  // Authenticate before interpreting: only Intel-signed bytes reach the field parser.
  await verifyTcbSigned(signed, issuerChainPem, trust, 'TCB info');
  const info = parseTcbInfo(signed.value);
  checkCollateralWindow(info.issueDate, info.nextUpdate, trust.at, 'TCB info');
  return info;
}
