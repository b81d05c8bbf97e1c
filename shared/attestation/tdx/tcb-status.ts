/**
 * The TDX TCB status of a verified quote, by Intel's algorithm (PCS "TDX TCB Info" documentation and
 * Intel's QVL TcbLevelCheck / TdxModuleCheck / TDRelaunchCheck): the TDX module's identity, the first
 * TCB level that both the PCK certificate's SGX TCB and the quote's TEE_TCB_SVN reach, the module's
 * own TCB level, TD relaunch advice for TDX 1.5 reports, and the QE's status folded in.
 * Inputs must already be verified; failures here are values that do not match (or a revoked TCB).
 */
import { ObscuraError } from '../../errors.ts';
import { equalBytes, isAllZero, toHex } from '../../bytes.ts';
import type { PckExtensions } from './pck-extensions.ts';
import type { TdQuoteBody } from './quote.ts';
import type { IsvSvnTcbLevel, ModuleTcbStatus, TcbLevelStatus, TdxModuleIdentity, TdxTcbInfo, TdxTcbLevel } from './tcb-info.ts';

export type TdxTcbStatus = TcbLevelStatus | 'TDRelaunchAdvised' | 'TDRelaunchAdvisedConfigurationNeeded';

/** Every status a verified quote can end with, best first (Revoked never gets this far). */
export const TDX_TCB_STATUSES: readonly TdxTcbStatus[] = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'TDRelaunchAdvised',
  'TDRelaunchAdvisedConfigurationNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
];

export interface TcbEvaluation {
  readonly tcbStatus: TdxTcbStatus;
  /** Intel security advisories of the matched TCB level, the TDX module level and the QE level. */
  readonly advisoryIds: readonly string[];
  /** The first TCB level both the SGX and the TDX TCB reach. */
  readonly tcbLevel: TdxTcbLevel;
  readonly sgxTcbStatus: TcbLevelStatus;
  readonly tdxModuleStatus: ModuleTcbStatus;
  readonly qeTcbStatus: ModuleTcbStatus;
}

function mismatch(message: string): never {
  throw new ObscuraError('ERR_VALUE_MISMATCH', message);
}

/** Byte 1 of TEE_TCB_SVN is the TDX module's major version; 0 means a module without identities (TDX 1.0). */
function moduleIdentityId(majorVersion: number): string {
  return `TDX_${majorVersion.toString(16).padStart(2, '0').toUpperCase()}`;
}

function findModuleIdentity(info: TdxTcbInfo, majorVersion: number): TdxModuleIdentity {
  const want = moduleIdentityId(majorVersion);
  const found = (info.tdxModuleIdentities ?? []).find((m) => m.id.toUpperCase() === want);
  if (found === undefined) mismatch(`TCB info has no TDX module identity ${want}`);
  return found;
}

/**
 * The SEAM module that produced the report is Intel's: MRSIGNERSEAM and SEAMATTRIBUTES against TCB
 * info's tdxModule, or against the module identity named by TEE_TCB_SVN[1] when that is above 0.
 * Returns that identity, if one applied.
 */
export function checkTdxModule(body: TdQuoteBody, info: TdxTcbInfo): TdxModuleIdentity | undefined {
  const majorVersion = body.teeTcbSvn[1];
  const identity = majorVersion > 0 ? findModuleIdentity(info, majorVersion) : undefined;
  const expected = identity ?? info.tdxModule;
  if (!equalBytes(body.mrSignerSeam, expected.mrSigner)) {
    mismatch(`MRSIGNERSEAM ${toHex(body.mrSignerSeam)} is not the TDX module signer in TCB info`);
  }
  const maskedAttributes = body.seamAttributes.map((b, i) => b & expected.attributesMask[i]);
  // Intel's QVL also insists SEAMATTRIBUTES be zero: no attribute is defined for production modules.
  if (!equalBytes(maskedAttributes, expected.attributes) || !isAllZero(body.seamAttributes)) {
    mismatch(`SEAMATTRIBUTES ${toHex(body.seamAttributes)} do not match the TDX module in TCB info`);
  }
  return identity;
}

function reachesSgx(pck: PckExtensions, level: TdxTcbLevel): boolean {
  for (let i = 0; i < level.sgxTcbComponents.length; i++) {
    if (pck.tcbComponents[i] < level.sgxTcbComponents[i]) return false;
  }
  return pck.pceSvn >= level.pceSvn;
}

function reachesTdx(teeTcbSvn: Uint8Array, level: TdxTcbLevel): boolean {
  // With a module identity, bytes 0 and 1 (module SVN and version) are judged by the identity instead.
  const first = teeTcbSvn[1] > 0 ? 2 : 0;
  for (let i = first; i < level.tdxTcbComponents.length; i++) {
    if (teeTcbSvn[i] < level.tdxTcbComponents[i]) return false;
  }
  return true;
}

function isConfigurationNeeded(s: TdxTcbStatus): boolean {
  return (
    s === 'ConfigurationNeeded' ||
    s === 'OutOfDateConfigurationNeeded' ||
    s === 'ConfigurationAndSWHardeningNeeded' ||
    s === 'TDRelaunchAdvisedConfigurationNeeded'
  );
}

/** An out-of-date module or QE lowers an otherwise good level; a revoked one revokes it. */
function converge(levelStatus: TdxTcbStatus, componentStatus: ModuleTcbStatus): TdxTcbStatus {
  if (componentStatus === 'Revoked') return 'Revoked';
  if (componentStatus === 'OutOfDate') {
    if (levelStatus === 'UpToDate' || levelStatus === 'SWHardeningNeeded') return 'OutOfDate';
    if (levelStatus === 'ConfigurationNeeded' || levelStatus === 'ConfigurationAndSWHardeningNeeded') {
      return 'OutOfDateConfigurationNeeded';
    }
  }
  return levelStatus;
}

/**
 * TDX 1.5 reports carry TEE_TCB_SVN_2, the SVNs of the module the TD would get if relaunched: when
 * only the module is out of date and a relaunch would bring it to the latest level, Intel advises that.
 */
function relaunchAdvice(
  teeTcbSvn2: Uint8Array,
  info: TdxTcbInfo,
  sgxStatus: TcbLevelStatus,
  tdxStatus: TdxTcbStatus,
  moduleStatus: ModuleTcbStatus,
  qeStatus: ModuleTcbStatus,
): TdxTcbStatus {
  if (qeStatus !== 'UpToDate') return tdxStatus;
  if (!['UpToDate', 'SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded'].includes(sgxStatus)) return tdxStatus;
  if (tdxStatus !== 'OutOfDate' && tdxStatus !== 'OutOfDateConfigurationNeeded') return tdxStatus;
  if (moduleStatus !== 'OutOfDate') return tdxStatus;
  const latest = info.tcbLevels[0];
  const latestModuleSvn =
    teeTcbSvn2[1] === 0 ? latest.tdxTcbComponents[0] : findModuleIdentity(info, teeTcbSvn2[1]).tcbLevels[0].isvSvn;
  if (teeTcbSvn2[0] >= latestModuleSvn && teeTcbSvn2[2] >= latest.tdxTcbComponents[2]) {
    return isConfigurationNeeded(sgxStatus) || isConfigurationNeeded(tdxStatus) ? 'TDRelaunchAdvisedConfigurationNeeded' : 'TDRelaunchAdvised';
  }
  return tdxStatus;
}

/**
 * Evaluates the TCB status. `pck` comes from the verified PCK leaf, `info` and `qeLevel` (from
 * matchQeIdentity) from verified collateral. Throws ERR_VALUE_MISMATCH (no level or identity applies: Intel's "TCB not
 * supported" / "TDX module mismatch") and ERR_REVOKED (a revoked TCB).
 */
export function evaluateTcbStatus(
  body: TdQuoteBody,
  pck: PckExtensions,
  info: TdxTcbInfo,
  qeLevel: Pick<IsvSvnTcbLevel, 'tcbStatus' | 'advisoryIds'>,
): TcbEvaluation {
  const qeTcbStatus = qeLevel.tcbStatus;
  if (!equalBytes(pck.fmspc, info.fmspc)) mismatch(`TCB info is for FMSPC ${toHex(info.fmspc)}, the PCK certificate's is ${toHex(pck.fmspc)}`);
  if (!equalBytes(pck.pceId, info.pceId)) mismatch(`TCB info is for PCE ID ${toHex(info.pceId)}, the PCK certificate's is ${toHex(pck.pceId)}`);
  const moduleIdentity = checkTdxModule(body, info);
  const tee = body.teeTcbSvn;

  const sgxLevel = info.tcbLevels.find((l) => reachesSgx(pck, l));
  if (sgxLevel === undefined) {
    mismatch(`the PCK certificate's SGX TCB (${pck.tcbComponents.join('.')}, PCESVN ${pck.pceSvn}) is below every TCB level`);
  }
  const tdxLevel = info.tcbLevels.find((l) => reachesSgx(pck, l) && reachesTdx(tee, l));
  if (tdxLevel === undefined) mismatch(`TEE_TCB_SVN ${toHex(tee)} is below every TCB level its SGX TCB reaches`);

  let moduleStatus: ModuleTcbStatus = 'UpToDate';
  const advisoryIds = new Set(tdxLevel.advisoryIds);
  if (moduleIdentity !== undefined) {
    const moduleLevel = moduleIdentity.tcbLevels.find((l) => tee[0] >= l.isvSvn);
    if (moduleLevel === undefined) mismatch(`TDX module SVN ${tee[0]} is below every level of ${moduleIdentity.id}`);
    moduleStatus = moduleLevel.tcbStatus;
    for (const a of moduleLevel.advisoryIds) advisoryIds.add(a);
  }

  for (const a of qeLevel.advisoryIds) advisoryIds.add(a);

  let status = converge(tdxLevel.tcbStatus, moduleStatus);
  if (status !== 'Revoked' && body.bodyType === 3 && body.teeTcbSvn2 !== undefined) {
    status = relaunchAdvice(body.teeTcbSvn2, info, sgxLevel.tcbStatus, status, moduleStatus, qeTcbStatus);
  }
  status = converge(status, qeTcbStatus);
  if (status === 'Revoked') throw new ObscuraError('ERR_REVOKED', 'the platform\'s TCB level is revoked');
  return {
    tcbStatus: status,
    advisoryIds: [...advisoryIds],
    tcbLevel: tdxLevel,
    sgxTcbStatus: sgxLevel.tcbStatus,
    tdxModuleStatus: moduleStatus,
    qeTcbStatus,
  };
}
