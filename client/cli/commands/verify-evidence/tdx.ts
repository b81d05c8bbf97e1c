/**
 * `obscura verify-evidence tdx`: an Intel TDX quote (v4/v5) with its collateral as Intel PCS serves it.
 *
 * The verify step is the TDX verifier's verifyQuote: PCK chain with both CRLs, QE report signature,
 * attestation-key binding, quote signature, TCB info and QE identity (signatures, chains, windows),
 * the QE against its identity, then Intel's TCB status. The TCB status is a fact here, judged only
 * by --policy (acceptedTcbStatuses, default UpToDate), with one addition: when the platform's TCB
 * is below every level of the TCB info (Intel's QVL calls this "TCB not supported"), verifyQuote
 * throws; the command then re-runs each step itself, and if every check passes but that lookup, it
 * reports the status "TcbNotSupported" instead of failing. No policy accepts that status.
 */
import { ObscuraError } from '../../../../shared/errors.ts';
import { equalBytes } from '../../../../shared/bytes.ts';
import { decodePem, parseCertificates, parseCrl } from '../../../../shared/attestation/x509/index.ts';
import {
  type TdxCollateral,
  type TdxFacts,
  type TdxPolicy,
  type TdxQuote,
  type VerifiedTdxQuote,
  checkTdxModule,
  evaluateTcbStatus,
  isDebugTd,
  loadTrustedRoots,
  matchQeIdentity,
  normalizeTdxPolicy,
  parseQuote,
  tdxFacts,
  validateTdxFacts,
  verifyPckChain,
  verifyQeIdentity,
  verifyQuote,
  verifyQuoteSignatures,
  verifyTcbInfo,
} from '../../../../shared/attestation/tdx/index.ts';
import {
  type CommonOptions,
  type VerifyOutcome,
  asPolicyObject,
  readBytes,
  readCertificates,
  readPolicyJson,
  readText,
  rejectUnknownKeys,
  short,
  step,
  toJson,
} from './common.ts';

export interface TdxFiles {
  readonly quote: string;
  readonly tcbInfo: string;
  readonly tcbInfoChain: string;
  readonly qeIdentity: string;
  readonly qeIdentityChain: string;
  readonly pckCrl: string;
  readonly pckCrlChain: string;
  readonly rootCrl: string;
  readonly roots: string;
}

/** The status reported when the platform's TCB is below every level Intel lists. */
export const TCB_NOT_SUPPORTED = 'TcbNotSupported';

const TDX_POLICY_KEYS = [
  'mrTd',
  'rtmrs',
  'mrSeam',
  'mrConfigId',
  'mrOwner',
  'mrOwnerConfig',
  'tdAttributes',
  'xfam',
  'reportData',
  'allowDebug',
  'acceptedTcbStatuses',
] as const;

export function tdxPolicyFromJson(json: unknown, where: string): TdxPolicy {
  const obj = asPolicyObject(json, where);
  rejectUnknownKeys(obj, TDX_POLICY_KEYS, where);
  const policy = obj as TdxPolicy;
  normalizeTdxPolicy(policy); // throws ERR_USAGE on a value of the wrong form
  return policy;
}

/** A CRL file: DER, or PEM "X509 CRL". */
async function readCrl(flag: string, path: string): Promise<Uint8Array> {
  const bytes = await readBytes(flag, path);
  return naming(flag, path, () => {
    const der = bytes[0] === 0x30 ? bytes : decodePem(new TextDecoder('latin1').decode(bytes), 'X509 CRL')[0];
    parseCrl(der); // malformed now, not halfway through verification
    return der;
  });
}

async function readChain(flag: string, path: string): Promise<string> {
  const text = await readText(flag, path);
  naming(flag, path, () => parseCertificates(text));
  return text;
}

/** Runs `fn`, prefixing the message of an ObscuraError with the flag and file it concerns. */
function naming<T>(flag: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ObscuraError) throw new ObscuraError(e.code, `${flag} ${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

interface TdxVerified {
  readonly facts: TdxFacts;
  /** Set when the TCB status is TCB_NOT_SUPPORTED: why the level lookup failed. */
  readonly tcbNote?: string;
}

/**
 * After verifyQuote threw ERR_VALUE_MISMATCH: run its steps one by one. Resolves with the verified
 * quote (status TCB_NOT_SUPPORTED) only when every step passes and evaluateTcbStatus alone fails;
 * otherwise rejects with the first step's error.
 */
async function verifyWithoutTcbLevel(quote: TdxQuote, c: TdxCollateral, roots: readonly Uint8Array[], at: Date): Promise<VerifiedTdxQuote | undefined> {
  const trust = { roots: loadTrustedRoots(roots), rootCrl: parseCrl(c.rootCrlDer), at };
  const pck = await verifyPckChain(quote.pckCertChainDer, parseCrl(c.pckCrlDer), c.pckCrlIssuerChainPem, trust);
  await verifyQuoteSignatures(quote, pck.key);
  const tcbInfo = await verifyTcbInfo(c.tcbInfoJson, c.tcbInfoIssuerChainPem, trust);
  const qeIdentity = await verifyQeIdentity(c.qeIdentityJson, c.qeIdentityIssuerChainPem, trust);
  const qeLevel = matchQeIdentity(quote.qeReport, qeIdentity);
  // Consistency (collateral for this platform, an Intel TDX module) stays an error.
  if (!equalBytes(pck.extensions.fmspc, tcbInfo.fmspc) || !equalBytes(pck.extensions.pceId, tcbInfo.pceId)) return undefined;
  checkTdxModule(quote.body, tcbInfo);
  try {
    evaluateTcbStatus(quote.body, pck.extensions, tcbInfo, qeLevel);
    return undefined; // it did not fail here: the original error stands
  } catch (e) {
    if (!(e instanceof ObscuraError) || e.code !== 'ERR_VALUE_MISMATCH') throw e;
  }
  const tcb = {
    tcbStatus: TCB_NOT_SUPPORTED,
    advisoryIds: [],
    sgxTcbStatus: TCB_NOT_SUPPORTED,
    tdxModuleStatus: TCB_NOT_SUPPORTED,
    qeTcbStatus: qeLevel.tcbStatus,
  } as unknown as VerifiedTdxQuote['tcb'];
  return { quote, pck: pck.extensions, tcbInfo, qeIdentity, tcb };
}

async function verifyTdxQuote(quote: TdxQuote, collateral: TdxCollateral, roots: readonly Uint8Array[], at: Date): Promise<TdxVerified> {
  try {
    return { facts: tdxFacts(await verifyQuote(quote, { collateral, trustedRoots: roots, at })) };
  } catch (e) {
    if (!(e instanceof ObscuraError) || e.code !== 'ERR_VALUE_MISMATCH') throw e;
    const verified = await verifyWithoutTcbLevel(quote, collateral, roots, at);
    if (!verified) throw e;
    return { facts: tdxFacts(verified), tcbNote: e.message };
  }
}

export async function verifyTdx(files: TdxFiles, options: CommonOptions): Promise<VerifyOutcome> {
  const input = await step('parse', async () => {
    const policy = options.policyPath === undefined ? undefined : tdxPolicyFromJson(await readPolicyJson(options.policyPath), `--policy ${options.policyPath}`);
    const quoteBytes = await readBytes('--quote', files.quote);
    const quote = naming('--quote', files.quote, () => parseQuote(quoteBytes));
    const collateral: TdxCollateral = {
      tcbInfoJson: await readBytes('--tcb-info', files.tcbInfo),
      tcbInfoIssuerChainPem: await readChain('--tcb-info-chain', files.tcbInfoChain),
      qeIdentityJson: await readBytes('--qe-identity', files.qeIdentity),
      qeIdentityIssuerChainPem: await readChain('--qe-identity-chain', files.qeIdentityChain),
      pckCrlDer: await readCrl('--pck-crl', files.pckCrl),
      pckCrlIssuerChainPem: await readChain('--pck-crl-chain', files.pckCrlChain),
      rootCrlDer: await readCrl('--root-crl', files.rootCrl),
    };
    const roots = (await readCertificates('--roots', files.roots)).map((c) => c.der);
    return { policy, quote, collateral, roots };
  });

  const { facts, tcbNote } = await step('verify', () => verifyTdxQuote(input.quote, input.collateral, input.roots, options.at));

  if (input.policy) {
    const policy = input.policy;
    await step('validate', () => validateTdxFacts(facts, policy));
  }

  const debug = isDebugTd(facts.tdAttributes);
  const json = toJson({
    evidence: 'tdx',
    at: options.at,
    ...facts,
    validated: input.policy !== undefined,
    debug,
    ...(tcbNote === undefined ? {} : { tcbStatusDetail: tcbNote }),
  }) as Record<string, unknown>;

  const summary = [
    `TDX quote verified: version ${facts.quoteVersion}, PCK chain to the given Intel root, collateral valid, at ${options.at.toISOString()}`,
    `  MRTD          ${facts.mrTd}`,
    ...facts.rtmrs.map((r, i) => `  RTMR${i}         ${short(r, 32)}`),
    `  MRSEAM        ${short(facts.mrSeam, 32)}`,
    `  report data   ${short(facts.reportData, 64)}`,
    `  TD attributes ${facts.tdAttributes}${debug ? ' (DEBUG)' : ''}`,
    `  TCB status    ${facts.tcbStatus}${facts.advisoryIds.length ? ` (${facts.advisoryIds.join(', ')})` : ''}, FMSPC ${facts.fmspc}, TCB eval #${facts.tcbEvaluationDataNumber}`,
    ...(tcbNote === undefined ? [] : [`  WARNING: Intel's TCB info has no level for this platform: ${tcbNote}`]),
    ...(debug ? ['  WARNING: this is a debug TD: the host can read and change its state'] : []),
    `  policy        ${input.policy ? `satisfied (${options.policyPath})` : 'not checked (no --policy)'}`,
  ];
  return { json, summary };
}
