/**
 * The PCK certificate chain a TDX quote carries (PCK leaf -> PCK Platform or Processor CA -> Intel SGX
 * Root CA): validated to an INJECTED root at the injected time, with the PCK CRL for the leaf and the
 * root CA's CRL for the CA, then read for the leaf's P-256 key and Intel SGX extensions.
 */
import { ObscuraError } from '../../errors.ts';
import { equalBytes } from '../../bytes.ts';
import {
  findExtension,
  importCertificatePublicKey,
  parseCertificates,
  validateCertificatePath,
  type ParsedCertificate,
  type ParsedCrl,
} from '../x509/index.ts';
import { parsePckExtensions, SGX_EXTENSIONS_OID, type PckExtensions } from './pck-extensions.ts';
import { commonNameOf, type IntelTrust } from './tcb-signing.ts';

export const INTEL_PCK_LEAF_CN = 'Intel SGX PCK Certificate';
export const INTEL_PCK_CA_CNS: readonly string[] = ['Intel SGX PCK Platform CA', 'Intel SGX PCK Processor CA'];

export interface VerifiedPck {
  readonly leaf: ParsedCertificate;
  /** The leaf's key: what signs the QE report. */
  readonly key: CryptoKey;
  readonly extensions: PckExtensions;
}

/**
 * `chainDer` is the quote's chain, leaf first (a copy of the root may end it). `pckCrl` is the CRL of
 * the leaf's CA, `pckCrlIssuerChainPem` that CA's chain as PCS serves it with the CRL.
 * Throws ERR_MALFORMED, ERR_UNTRUSTED_ROOT, ERR_CHAIN_INVALID, ERR_NOT_YET_VALID, ERR_EXPIRED, ERR_REVOKED.
 */
export async function verifyPckChain(
  chainDer: readonly Uint8Array[],
  pckCrl: ParsedCrl,
  pckCrlIssuerChainPem: string,
  trust: IntelTrust,
): Promise<VerifiedPck> {
  if (chainDer.length === 0) throw new ObscuraError('ERR_CHAIN_INVALID', 'the quote carries no PCK certificate');
  const [leafDer, ...rest] = chainDer;
  const path = await validateCertificatePath({
    leaf: leafDer,
    intermediates: rest,
    trustedRoots: trust.roots,
    at: trust.at,
    crls: [pckCrl, trust.rootCrl],
    leafProfile: { publicKey: 'ec-p256' },
  });
  const leaf = path.leaf;
  const pckCa = path.intermediates[0];
  if (
    commonNameOf(leaf) !== INTEL_PCK_LEAF_CN ||
    path.intermediates.length !== 1 ||
    !INTEL_PCK_CA_CNS.includes(commonNameOf(pckCa) ?? '')
  ) {
    throw new ObscuraError('ERR_CHAIN_INVALID', 'the quote\'s chain is not PCK certificate -> PCK CA -> root');
  }

  // The CRL's own issuer chain, validated like any other: it must lead to a trusted root and name
  // the very CA that issued the PCK leaf (same name, same key).
  if (typeof pckCrlIssuerChainPem !== 'string') throw new ObscuraError('ERR_MALFORMED', 'PCK CRL issuer chain must be PEM text');
  const [crlIssuer, ...crlRest] = parseCertificates(pckCrlIssuerChainPem);
  const crlPath = await validateCertificatePath({
    leaf: crlIssuer,
    intermediates: crlRest,
    trustedRoots: trust.roots,
    at: trust.at,
    crls: [trust.rootCrl],
    leafProfile: { allowCA: true },
  });
  if (crlPath.leaf.subject !== pckCa.subject || !equalBytes(crlPath.leaf.subjectPublicKeyInfo, pckCa.subjectPublicKeyInfo)) {
    throw new ObscuraError('ERR_CHAIN_INVALID', 'the PCK CRL issuer chain is not that of the CA that issued the PCK certificate');
  }

  const sgx = findExtension(leaf, SGX_EXTENSIONS_OID);
  if (sgx === undefined) throw new ObscuraError('ERR_CHAIN_INVALID', 'PCK certificate has no Intel SGX extensions');
  const extensions = parsePckExtensions(sgx.value);
  const key = await importCertificatePublicKey(leaf, { name: 'ECDSA', namedCurve: 'P-256' });
  return { leaf, key, extensions };
}
