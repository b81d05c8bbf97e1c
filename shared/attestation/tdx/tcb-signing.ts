/**
 * The Intel SGX TCB Signing certificate and what it signs: TCB info and QE identity documents. The
 * certificate's chain (as PCS serves it in the *-Issuer-Chain header) is validated to an injected root
 * with the root CA's CRL; then the document's signature over its raw member bytes is checked.
 */
import { ObscuraError } from '../../errors.ts';
import {
  importCertificatePublicKey,
  parseCertificates,
  validateCertificatePath,
  type ParsedCertificate,
  type ParsedCrl,
} from '../x509/index.ts';
import { verifyP256 } from './ecdsa.ts';
import type { SignedJsonMember } from './signed-json.ts';

export const INTEL_TCB_SIGNING_CN = 'Intel SGX TCB Signing';

/** The injected trust: the roots (never taken from evidence), the root CA's CRL and the time. */
export interface IntelTrust {
  readonly roots: readonly ParsedCertificate[];
  readonly rootCrl: ParsedCrl;
  readonly at: Date;
}

/** The subject's single common name: Intel's profile names each CA and leaf by CN. */
export function commonNameOf(cert: ParsedCertificate): string | undefined {
  const cns = cert.pkijs.subject.typesAndValues.filter((tv) => tv.type === '2.5.4.3');
  if (cns.length !== 1) return undefined;
  const v = (cns[0].value.valueBlock as { value?: unknown }).value;
  return typeof v === 'string' ? v : undefined;
}

/** Throws ERR_MALFORMED, the chain and validity codes of validateCertificatePath, ERR_SIGNATURE_INVALID. */
export async function verifyTcbSigned(signed: SignedJsonMember, issuerChainPem: string, trust: IntelTrust, what: string): Promise<void> {
  if (typeof issuerChainPem !== 'string') throw new ObscuraError('ERR_MALFORMED', `${what} issuer chain must be PEM text`);
  const [signer, ...rest] = parseCertificates(issuerChainPem);
  const path = await validateCertificatePath({
    leaf: signer,
    intermediates: rest,
    trustedRoots: trust.roots,
    at: trust.at,
    crls: [trust.rootCrl],
    leafProfile: { publicKey: 'ec-p256' },
  });
  // Intel issues the TCB Signing certificate directly under the root.
  if (commonNameOf(path.leaf) !== INTEL_TCB_SIGNING_CN || path.intermediates.length !== 0) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what} is not signed by an "${INTEL_TCB_SIGNING_CN}" certificate under the root`);
  }
  const key = await importCertificatePublicKey(path.leaf, { name: 'ECDSA', namedCurve: 'P-256' });
  if (!(await verifyP256(key, signed.signature, signed.signedBytes))) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', `${what} signature does not verify`);
  }
}
