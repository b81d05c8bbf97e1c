/**
 * Per-request keys: one HKDF-SHA256 output from the inference secret and the request's fresh salt, cut
 * into a request key and IV and a response key and IV base (a key block, as RFC 5869 §3.3 allows and
 * TLS 1.2 does), so no (key, IV) pair is ever reused across requests or directions. One derivation
 * instead of one per key: each WebCrypto call is a thread-pool hand-off, which is most of what a
 * request's sealing costs.
 */
import { bufferOf, utf8 } from '../bytes.ts';
import { AES_GCM_IV_BYTES, LABEL_REQUEST_KEY_BLOCK } from './constants.ts';

const AES_256_KEY_BYTES = 32;
/** requestKey ‖ requestIv ‖ responseKey ‖ responseIvBase. */
export const REQUEST_KEY_BLOCK_BYTES = 2 * (AES_256_KEY_BYTES + AES_GCM_IV_BYTES);

export interface RequestKeys {
  requestKey: CryptoKey;
  requestIv: Uint8Array;
  responseKey: CryptoKey;
  responseIvBase: Uint8Array;
}

const INFO_REQUEST_KEY_BLOCK = utf8(LABEL_REQUEST_KEY_BLOCK);

/** Import the 32-byte secret once; derivations per request reuse the imported key. */
export async function importInferenceSecret(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', bufferOf(secret), 'HKDF', false, ['deriveBits']);
}

function importAesKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', bufferOf(raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
}

export async function deriveRequestKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeys> {
  const block = new Uint8Array(
    await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: bufferOf(salt), info: bufferOf(INFO_REQUEST_KEY_BLOCK) }, secretKey, REQUEST_KEY_BLOCK_BYTES * 8),
  );
  try {
    const [requestKey, responseKey] = await Promise.all([
      importAesKey(block.subarray(0, AES_256_KEY_BYTES)),
      importAesKey(block.subarray(AES_256_KEY_BYTES + AES_GCM_IV_BYTES, 2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES)),
    ]);
    return {
      requestKey,
      requestIv: block.slice(AES_256_KEY_BYTES, AES_256_KEY_BYTES + AES_GCM_IV_BYTES),
      responseKey,
      responseIvBase: block.slice(2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES),
    };
  } finally {
    // importKey copied them: the raw key bytes are not kept (the keys are non-extractable).
    block.fill(0);
  }
}

/** IV for frame `seq`: the base IV XOR the 96-bit big-endian sequence number (as TLS 1.3 does). */
export function frameIv(base: Uint8Array, seq: number): Uint8Array {
  const iv = base.slice();
  let s = seq;
  for (let i = iv.length - 1; i >= 0 && s > 0; i--) {
    iv[i] ^= s & 0xff;
    s = Math.floor(s / 256);
  }
  return iv;
}
