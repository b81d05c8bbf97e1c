/** ECDSA P-256 with SHA-256 over raw keys and raw r || s signatures, the forms Intel's quote and PCS use. */
import { ObscuraError } from '../../errors.ts';
import { bufferOf, concatBytes } from '../../bytes.ts';

export const P256_COORDINATE_BYTES = 32;
const UNCOMPRESSED_POINT = 0x04;

/** Imports x || y (64 bytes). A point off the curve is refused here: ERR_SIGNATURE_INVALID. */
export async function importP256RawKey(xy: Uint8Array, what: string): Promise<CryptoKey> {
  if (xy.length !== 2 * P256_COORDINATE_BYTES) throw new ObscuraError('ERR_MALFORMED', `${what} is not 64 bytes`);
  try {
    return await crypto.subtle.importKey(
      'raw',
      bufferOf(concatBytes(Uint8Array.of(UNCOMPRESSED_POINT), xy)),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['verify'],
    );
  } catch (cause) {
    throw new ObscuraError('ERR_SIGNATURE_INVALID', `${what} is not a valid P-256 public key`, { cause });
  }
}

/** WebCrypto's ECDSA signature format is r || s already (IEEE P1363), as the quote carries it. */
export async function verifyP256(key: CryptoKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  if (signature.length !== 2 * P256_COORDINATE_BYTES) return false;
  try {
    return await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, bufferOf(signature), bufferOf(data));
  } catch {
    return false;
  }
}
