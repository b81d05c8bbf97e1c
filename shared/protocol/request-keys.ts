/**
 * Per-request keys: HKDF-SHA256 from the inference secret and the request's fresh salt, with separate
 * request and response keys and IVs, so no (key, IV) pair is ever reused across requests or directions.
 */
import { bufferOf, utf8 } from '../bytes.ts';
import { AES_GCM_IV_BYTES, LABEL_REQUEST_IV, LABEL_REQUEST_KEY, LABEL_RESPONSE_IV, LABEL_RESPONSE_KEY } from './constants.ts';

export interface RequestKeys {
  requestKey: CryptoKey;
  requestIv: Uint8Array;
  responseKey: CryptoKey;
  responseIvBase: Uint8Array;
}

async function hkdf(ikm: CryptoKey, salt: Uint8Array, label: string, bits: number): Promise<Uint8Array> {
  const out = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: bufferOf(salt), info: bufferOf(utf8(label)) },
    ikm,
    bits,
  );
  return new Uint8Array(out);
}

/** Import the 32-byte secret once; derivations per request reuse the imported key. */
export async function importInferenceSecret(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', bufferOf(secret), 'HKDF', false, ['deriveBits']);
}

export async function deriveRequestKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeys> {
  const [rk, riv, sk, siv] = await Promise.all([
    hkdf(secretKey, salt, LABEL_REQUEST_KEY, 256),
    hkdf(secretKey, salt, LABEL_REQUEST_IV, AES_GCM_IV_BYTES * 8),
    hkdf(secretKey, salt, LABEL_RESPONSE_KEY, 256),
    hkdf(secretKey, salt, LABEL_RESPONSE_IV, AES_GCM_IV_BYTES * 8),
  ]);
  let requestKey: CryptoKey, responseKey: CryptoKey;
  try {
    [requestKey, responseKey] = await Promise.all([
      crypto.subtle.importKey('raw', bufferOf(rk), 'AES-GCM', false, ['encrypt', 'decrypt']),
      crypto.subtle.importKey('raw', bufferOf(sk), 'AES-GCM', false, ['encrypt', 'decrypt']),
    ]);
  } finally {
    // importKey copied them: the raw key bytes are not kept (the keys are non-extractable).
    rk.fill(0);
    sk.fill(0);
  }
  return { requestKey, requestIv: riv, responseKey, responseIvBase: siv };
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
