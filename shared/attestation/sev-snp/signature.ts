/**
 * The report signature: ECDSA P-384 with SHA-384 over bytes [0, 0x2A0). The ABI stores r and s as
 * 72-byte little-endian integers at 0x2A0 and 0x2E8; WebCrypto wants IEEE P1363 (48-byte big-endian
 * r ‖ s), so the conversion lives here, in both directions.
 */
import { bufferOf, concatBytes, isAllZero } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import {
  SNP_REPORT_SIZE_BYTES,
  SNP_SIGNATURE_COMPONENT_BYTES,
  SNP_SIGNATURE_FIELD_BYTES,
  SNP_SIGNED_LENGTH_BYTES,
  type SnpReport,
} from './report.ts';

/** P-384 scalars are 48 bytes. */
export const P384_SCALAR_BYTES = 48;
export const P1363_P384_SIGNATURE_BYTES = 2 * P384_SCALAR_BYTES;

function reversed(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[bytes.length - 1 - i];
  return out;
}

/**
 * r, s (72-byte little-endian each) to P1363 (96 bytes). Throws ERR_SIGNATURE_INVALID when a value
 * does not fit in 48 bytes: no P-384 signature can have such a component.
 */
export function snpSignatureToP1363(r: Uint8Array, s: Uint8Array): Uint8Array {
  if (r.length !== SNP_SIGNATURE_COMPONENT_BYTES || s.length !== SNP_SIGNATURE_COMPONENT_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', 'SNP signature components must be 72 bytes each');
  }
  if (!isAllZero(r.subarray(P384_SCALAR_BYTES)) || !isAllZero(s.subarray(P384_SCALAR_BYTES))) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', 'SNP signature r or s is wider than a P-384 scalar');
  }
  return concatBytes(reversed(r.subarray(0, P384_SCALAR_BYTES)), reversed(s.subarray(0, P384_SCALAR_BYTES)));
}

/** P1363 (96 bytes, as WebCrypto's ECDSA sign returns) to the report's 512-byte SIGNATURE field. */
export function snpSignatureFromP1363(signature: Uint8Array): Uint8Array {
  if (signature.length !== P1363_P384_SIGNATURE_BYTES) {
    throw new ObscuraError('ERR_USAGE', `a P-384 P1363 signature is ${P1363_P384_SIGNATURE_BYTES} bytes`);
  }
  const field = new Uint8Array(SNP_SIGNATURE_FIELD_BYTES);
  field.set(reversed(signature.subarray(0, P384_SCALAR_BYTES)), 0);
  field.set(reversed(signature.subarray(P384_SCALAR_BYTES)), SNP_SIGNATURE_COMPONENT_BYTES);
  return field;
}

/** A whole report from its signed body (0x2A0 bytes) and a P1363 signature over it. */
export function assembleSnpReport(body: Uint8Array, signatureP1363: Uint8Array): Uint8Array {
  if (body.length !== SNP_SIGNED_LENGTH_BYTES) throw new ObscuraError('ERR_USAGE', `an SNP report body is ${SNP_SIGNED_LENGTH_BYTES} bytes`);
  const out = new Uint8Array(SNP_REPORT_SIZE_BYTES);
  out.set(body, 0);
  out.set(snpSignatureFromP1363(signatureP1363), SNP_SIGNED_LENGTH_BYTES);
  return out;
}

/**
 * Verify the report's signature with the VCEK/VLEK public key (an ECDSA P-384 verify key).
 * Throws ERR_SIGNATURE_INVALID.
 */
export async function verifySnpReportSignature(report: SnpReport, publicKey: CryptoKey): Promise<void> {
  const signature = snpSignatureToP1363(report.signature.r, report.signature.s);
  let ok = false;
  try {
    ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, publicKey, bufferOf(signature), bufferOf(report.signedBytes));
  } catch (cause) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', 'SNP report signature cannot be checked with this key', { cause });
  }
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'SNP report signature does not verify under the endorsement key');
}
