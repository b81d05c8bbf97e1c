/**
 * Per-request keys: HKDF-SHA256 from the inference secret and the request's fresh salt, with separate
 * request and response keys and IVs, so no (key, IV) pair is ever reused across requests or directions.
 */
import { bufferOf, utf8 } from '../bytes.ts';
import { AES_GCM_IV_BYTES, LABEL_REQUEST_IV, LABEL_REQUEST_KEY, LABEL_RESPONSE_IV, LABEL_RESPONSE_KEY } from './constants.ts';

/** What sealing and opening the request needs. */
export interface RequestDirectionKeys {
  requestKey: CryptoKey;
  requestIv: Uint8Array;
}

/** What sealing and opening the response needs: derived beside the request's, which need not wait for it. */
export interface ResponseDirectionKeys {
  responseKey: CryptoKey;
  responseIvBase: Uint8Array;
}

export interface RequestKeys extends RequestDirectionKeys, ResponseDirectionKeys {}

async function hkdf(ikm: CryptoKey, salt: Uint8Array, label: Uint8Array, bits: number): Promise<Uint8Array> {
  const out = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: bufferOf(salt), info: bufferOf(label) }, ikm, bits);
  return new Uint8Array(out);
}

const INFO_REQUEST_KEY = utf8(LABEL_REQUEST_KEY);
const INFO_REQUEST_IV = utf8(LABEL_REQUEST_IV);
const INFO_RESPONSE_KEY = utf8(LABEL_RESPONSE_KEY);
const INFO_RESPONSE_IV = utf8(LABEL_RESPONSE_IV);

/** Import the 32-byte secret once; derivations per request reuse the imported key. */
export async function importInferenceSecret(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', bufferOf(secret), 'HKDF', false, ['deriveBits']);
}

/** An AES-256-GCM key and a 96-bit IV, each HKDF-SHA256(secret, salt, its own label). */
async function deriveKeyAndIv(secretKey: CryptoKey, salt: Uint8Array, keyLabel: Uint8Array, ivLabel: Uint8Array): Promise<[CryptoKey, Uint8Array]> {
  const [raw, iv] = await Promise.all([hkdf(secretKey, salt, keyLabel, 256), hkdf(secretKey, salt, ivLabel, AES_GCM_IV_BYTES * 8)]);
  try {
    return [await crypto.subtle.importKey('raw', bufferOf(raw), 'AES-GCM', false, ['encrypt', 'decrypt']), iv];
  } finally {
    // importKey copied it: the raw key bytes are not kept (the key is non-extractable).
    raw.fill(0);
  }
}

export async function deriveRequestDirectionKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestDirectionKeys> {
  const [requestKey, requestIv] = await deriveKeyAndIv(secretKey, salt, INFO_REQUEST_KEY, INFO_REQUEST_IV);
  return { requestKey, requestIv };
}

export async function deriveResponseDirectionKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<ResponseDirectionKeys> {
  const [responseKey, responseIvBase] = await deriveKeyAndIv(secretKey, salt, INFO_RESPONSE_KEY, INFO_RESPONSE_IV);
  return { responseKey, responseIvBase };
}

/** Both directions' keys at once. */
export async function deriveRequestKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeys> {
  const [request, response] = await Promise.all([deriveRequestDirectionKeys(secretKey, salt), deriveResponseDirectionKeys(secretKey, salt)]);
  return { ...request, ...response };
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
