/**
 * The NVIDIA device certificate chain, leaf first as the GPU driver returns it:
 * attestation key (GSP FMC LF) <- GSP BROM <- GH100 Provisioner ICA <- GH100 Identity <- Device Identity CA.
 *
 * Path validation is shared/attestation/x509's (pkijs with the leaf last, pinned root, injected time,
 * pathLen, critical-extension allow-list, SHA-2 algorithms). On top of it, NVIDIA's profile: exactly
 * five certificates in leaf-to-root order ending at an injected root, every one signed with
 * ecdsa-with-SHA384, and a P-384 leaf whose keyUsage allows digitalSignature.
 *
 * Revocation is not checked: NVIDIA publishes it by OCSP only, which needs a network fetch and a signed
 * response this offline verifier is not given.
 */
import { ObscuraError } from '../../errors.ts';
import { equalBytes } from '../../bytes.ts';
import {
  type CertificateInput,
  type ParsedCertificate,
  importCertificatePublicKey,
  parseCertificates,
  validateCertificatePath,
} from '../x509/index.ts';

export type { CertificateInput } from '../x509/index.ts';

/** Leaf, three intermediates, root: the depth NVIDIA's Hopper device chains have. */
export const NVIDIA_GPU_CHAIN_CERTS = 5;
const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';

export interface NvidiaCertificateChain {
  /** Leaf first, ending at the injected root that matched. */
  readonly path: readonly ParsedCertificate[];
  readonly leaf: ParsedCertificate;
  /** The attestation key: ECDSA P-384, for verifying SPDM signatures. */
  readonly leafPublicKey: CryptoKey;
}

export async function verifyNvidiaCertificateChain(
  certChain: string | readonly CertificateInput[],
  trustedRoots: readonly CertificateInput[],
  at: Date,
): Promise<NvidiaCertificateChain> {
  const certs = parseCertificates(certChain);
  if (certs.length !== NVIDIA_GPU_CHAIN_CERTS) {
    throw chainInvalid(`expected ${NVIDIA_GPU_CHAIN_CERTS} certificates (leaf to root), got ${certs.length}`);
  }
  // The chain's own root proves nothing: it must be, byte for byte, one the caller trusts.
  const roots = trustedRoots.flatMap((r) => parseCertificates(typeof r === 'string' ? r : [r]));
  const root = certs[certs.length - 1];
  if (!roots.some((r) => equalBytes(r.der, root.der))) {
    throw new ObscuraError('ERR_UNTRUSTED_ROOT', 'the certificate chain does not end at a trusted NVIDIA root');
  }
  for (const cert of certs) {
    if (cert.pkijs.signatureAlgorithm.algorithmId !== OID_ECDSA_WITH_SHA384) {
      throw chainInvalid(`"${cert.subject}" is not signed with ecdsa-with-SHA384`);
    }
  }

  const validated = await validateCertificatePath({
    leaf: certs[0],
    intermediates: certs.slice(1, -1),
    trustedRoots: [root],
    at,
    maxIntermediates: NVIDIA_GPU_CHAIN_CERTS - 2,
    leafProfile: { publicKey: 'ec-p384' },
  });
  // The validated path must be the chain exactly as given, in its order.
  if (validated.path.length !== certs.length || validated.path.some((c, i) => !equalBytes(c.der, certs[i].der))) {
    throw chainInvalid('the validated path is not the chain as given, leaf to root');
  }
  if (!validated.leaf.keyUsage?.digitalSignature) {
    throw chainInvalid('the attestation certificate lacks keyUsage digitalSignature');
  }
  const leafPublicKey = await importCertificatePublicKey(validated.leaf, { name: 'ECDSA', namedCurve: 'P-384' });
  return { path: validated.path, leaf: validated.leaf, leafPublicKey };
}

function chainInvalid(message: string): ObscuraError {
  return new ObscuraError('ERR_CHAIN_INVALID', `NVIDIA certificate chain: ${message}`);
}
