/**
 * Verify step for TDX quotes: everything that needs a signature, a chain or a time, against roots,
 * collateral and a time the caller INJECTS (nothing is fetched, no clock is read).
 *   1. the PCK chain to a trusted Intel SGX Root CA, with the PCK CRL and the root CA's CRL;
 *   2. the QE report, signed by the PCK leaf;
 *   3. QE REPORTDATA = SHA-256(attestation key || QE auth data) || 32 zero bytes: the QE vouches
 *      for the attestation key;
 *   4. the quote signature by the attestation key over header || body;
 *   5. TCB info and QE identity: TCB Signing chain, signature over the raw JSON member, window;
 *   6. the QE report against the QE identity, and the TCB status (tcb-status.ts).
 * Values against reference values are validate.ts's job.
 */
import { ObscuraError } from '../../errors.ts';
import { concatBytes, equalBytes, isAllZero, sha256 } from '../../bytes.ts';
import { importP256RawKey, verifyP256 } from './ecdsa.ts';
import { verifyPckChain } from './pck-chain.ts';
import type { PckExtensions } from './pck-extensions.ts';
import { matchQeIdentity, verifyQeIdentity, type QeIdentity } from './qe-identity.ts';
import { parseQuote, type TdxQuote } from './quote.ts';
import type { IntelTrust } from './tcb-signing.ts';
import { verifyTcbInfo, type TdxTcbInfo } from './tcb-info.ts';
import { evaluateTcbStatus, type TcbEvaluation } from './tcb-status.ts';
import { parseCertificate, parseCertificates, parseCrl, type ParsedCertificate } from '../x509/index.ts';

/** Collateral as Intel PCS serves it (or a PCCS caches it): JSON bodies as received, DER CRLs, PEM chains. */
export interface TdxCollateral {
  /** Body of /tdx/certification/v4/tcb: {"tcbInfo":{...},"signature":"..."}, unmodified. */
  readonly tcbInfoJson: string | Uint8Array;
  /** The TCB-Info-Issuer-Chain header, URL-decoded: TCB Signing cert, then the root. */
  readonly tcbInfoIssuerChainPem: string;
  /** Body of /tdx/certification/v4/qe/identity, unmodified. */
  readonly qeIdentityJson: string | Uint8Array;
  readonly qeIdentityIssuerChainPem: string;
  /** CRL of the PCK leaf's CA (platform or processor), DER. */
  readonly pckCrlDer: Uint8Array;
  /** The SGX-PCK-CRL-Issuer-Chain header, URL-decoded: the PCK CA, then the root. */
  readonly pckCrlIssuerChainPem: string;
  /** The Intel SGX Root CA's CRL, DER. */
  readonly rootCrlDer: Uint8Array;
}

export interface VerifyTdxQuoteOptions {
  readonly collateral: TdxCollateral;
  /** The Intel SGX Root CA(s) the caller trusts, DER or PEM. Never taken from the evidence. */
  readonly trustedRoots: readonly (Uint8Array | string)[];
  /** The time every certificate, CRL and collateral window is judged at. */
  readonly at: Date;
}

export interface VerifiedTdxQuote {
  readonly quote: TdxQuote;
  readonly pck: PckExtensions;
  readonly tcbInfo: TdxTcbInfo;
  readonly qeIdentity: QeIdentity;
  readonly tcb: TcbEvaluation;
}

/** Parses the caller's roots (DER or PEM). A broken root is the caller's configuration: ERR_USAGE. */
export function loadTrustedRoots(roots: readonly (Uint8Array | string)[]): ParsedCertificate[] {
  if (!Array.isArray(roots) || roots.length === 0) throw new ObscuraError('ERR_USAGE', 'at least one trusted root is required');
  try {
    return roots.flatMap((r) => (typeof r === 'string' ? parseCertificates(r) : [parseCertificate(r)]));
  } catch (cause) {
    throw new ObscuraError('ERR_USAGE', 'a trusted root is not a certificate', { cause });
  }
}

function bytesInput(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ObscuraError('ERR_MALFORMED', `${what} must be bytes`);
  return value;
}

/**
 * Steps 2-4: the signatures inside the quote, given the PCK leaf's key (from a verified chain).
 * Throws ERR_SIGNATURE_INVALID.
 */
export async function verifyQuoteSignatures(quote: TdxQuote, pckKey: CryptoKey): Promise<void> {
  if (!(await verifyP256(pckKey, quote.qeReportSignature, quote.qeReport.raw))) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', 'QE report signature does not verify with the PCK certificate');
  }
  const binding = await sha256(concatBytes(quote.attestationKey, quote.qeAuthData));
  const reportData = quote.qeReport.reportData;
  if (!equalBytes(reportData.subarray(0, binding.length), binding) || !isAllZero(reportData.subarray(binding.length))) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', 'QE report data does not bind the attestation key and QE auth data');
  }
  const attestationKey = await importP256RawKey(quote.attestationKey, 'attestation key');
  if (!(await verifyP256(attestationKey, quote.signature, quote.signedBytes))) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', 'quote signature does not verify with the attestation key');
  }
}

/**
 * Verifies a TDX quote (bytes or parsed) with its collateral against the injected roots at `at`.
 * Returns what was verified, with the TCB status. Throws ObscuraError only.
 */
export async function verifyQuote(input: TdxQuote | Uint8Array, opts: VerifyTdxQuoteOptions): Promise<VerifiedTdxQuote> {
  const { collateral: c, at } = opts;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new ObscuraError('ERR_USAGE', 'at must be a valid Date');
  if (typeof c !== 'object' || c === null) throw new ObscuraError('ERR_USAGE', 'collateral is required');
  const quote = input instanceof Uint8Array ? parseQuote(input) : input;
  const trust: IntelTrust = {
    roots: loadTrustedRoots(opts.trustedRoots),
    rootCrl: parseCrl(bytesInput(c.rootCrlDer, 'root CA CRL')),
    at,
  };
  const pckCrl = parseCrl(bytesInput(c.pckCrlDer, 'PCK CRL'));

  const pck = await verifyPckChain(quote.pckCertChainDer, pckCrl, c.pckCrlIssuerChainPem, trust);
  await verifyQuoteSignatures(quote, pck.key);

  const tcbInfo = await verifyTcbInfo(c.tcbInfoJson, c.tcbInfoIssuerChainPem, trust);
  const qeIdentity = await verifyQeIdentity(c.qeIdentityJson, c.qeIdentityIssuerChainPem, trust);

  const qeLevel = matchQeIdentity(quote.qeReport, qeIdentity);
  const tcb = evaluateTcbStatus(quote.body, pck.extensions, tcbInfo, qeLevel);
  return { quote, pck: pck.extensions, tcbInfo, qeIdentity, tcb };
}
