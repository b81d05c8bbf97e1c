/**
 * Verify NVIDIA GPU evidence: the device certificate chain to an injected NVIDIA root at an injected
 * time, the SPDM signature with the attestation key it certifies, the verifier's nonce, and the FWID
 * binding between the signed opaque data and the certificate. Values are judged later (validate.ts).
 */
import { ObscuraError } from '../../errors.ts';
import { bufferOf, equalBytes, fromHex } from '../../bytes.ts';
import { type NvidiaSpdmEvidence, SPDM_NONCE_BYTES } from './spdm.ts';
import { type CertificateInput, type NvidiaCertificateChain, verifyNvidiaCertificateChain } from './certificate-chain.ts';
import { certificateFwid } from './fwid.ts';

export interface VerifyNvidiaSpdmEvidenceOptions {
  /** PEM (leaf first, as the driver returns it) or certificates in that order. */
  readonly certChain: string | readonly CertificateInput[];
  /** The NVIDIA roots the caller's own policy trusts; never taken from the evidence. */
  readonly trustedRoots: readonly CertificateInput[];
  readonly at: Date;
  /** The nonce this verifier put in GET_MEASUREMENTS; when given, the evidence must carry it. */
  readonly expectedNonce?: Uint8Array | string;
}

export async function verifyNvidiaSpdmEvidence(
  evidence: NvidiaSpdmEvidence,
  options: VerifyNvidiaSpdmEvidenceOptions,
): Promise<NvidiaCertificateChain> {
  const expectedNonce = options.expectedNonce === undefined ? undefined : nonceBytes(options.expectedNonce);
  const chain = await verifyNvidiaCertificateChain(options.certChain, options.trustedRoots, options.at);
  await verifyMeasurementsSignature(evidence, chain.leafPublicKey);
  if (expectedNonce && !equalBytes(expectedNonce, evidence.request.nonce)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the GPU evidence does not carry the nonce this verifier chose');
  }
  // Older drivers omit the FWID from the opaque data; when present it must be the certificate's.
  if (evidence.opaque.fwid) {
    const certFwid = certificateFwid(chain.leaf);
    if (!certFwid || !equalBytes(certFwid, evidence.opaque.fwid)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the FWID in the GPU evidence differs from its attestation certificate');
    }
  }
  return chain;
}

/** ECDSA P-384 / SHA-384 over GET_MEASUREMENTS || MEASUREMENTS without the signature (SPDM 1.1 L1). */
export async function verifyMeasurementsSignature(evidence: NvidiaSpdmEvidence, attestationKey: CryptoKey): Promise<void> {
  const ok = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-384' },
    attestationKey,
    bufferOf(evidence.response.signature),
    bufferOf(evidence.signedBytes),
  );
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the SPDM MEASUREMENTS signature does not verify with the attestation key');
}

function nonceBytes(nonce: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = typeof nonce === 'string' ? fromHex(nonce) : nonce;
  } catch (cause) {
    throw new ObscuraError('ERR_USAGE', 'the expected nonce is not hex', { cause });
  }
  if (bytes.length !== SPDM_NONCE_BYTES) throw new ObscuraError('ERR_USAGE', `the expected nonce must be ${SPDM_NONCE_BYTES} bytes`);
  return bytes;
}
