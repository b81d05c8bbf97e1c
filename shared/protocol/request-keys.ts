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

/**
 * Derive a request's keys and run `useRequestKey` (the request's encryption or decryption) as soon as its
 * own key is imported; the response key is imported while that runs. The raw key block is erased once
 * imported (the keys are non-extractable).
 */
export async function withRequestKeys<T>(
  secretKey: CryptoKey,
  salt: Uint8Array,
  useRequestKey: (requestKey: CryptoKey, requestIv: Uint8Array) => Promise<T>,
): Promise<{ keys: RequestKeys; result: T }> {
  const block = new Uint8Array(
    await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: bufferOf(salt), info: bufferOf(INFO_REQUEST_KEY_BLOCK) }, secretKey, REQUEST_KEY_BLOCK_BYTES * 8),
  );
  try {
    const requestKey = await importAesKey(block.subarray(0, AES_256_KEY_BYTES));
    const requestIv = block.slice(AES_256_KEY_BYTES, AES_256_KEY_BYTES + AES_GCM_IV_BYTES);
    const used = useRequestKey(requestKey, requestIv);
    used.catch(() => {}); // awaited below, unless the response key's import fails first
    const responseKey = await importAesKey(block.subarray(AES_256_KEY_BYTES + AES_GCM_IV_BYTES, 2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES));
    const responseIvBase = block.slice(2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES);
    return { keys: { requestKey, requestIv, responseKey, responseIvBase }, result: await used };
  } finally {
    block.fill(0);
  }
}

/** A request's keys alone. */
export async function deriveRequestKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeys> {
  return (await withRequestKeys(secretKey, salt, async () => undefined)).keys;
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
