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
 * A request's key block, raw. Whoever derives it imports the keys (non-extractable) and zeroes it: the
 * request's key first, so its encryption or decryption can start while the response key is imported.
 */
export class RequestKeyBlock {
  private constructor(private readonly block: Uint8Array) {}

  static async derive(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeyBlock> {
    const bits = await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: bufferOf(salt), info: bufferOf(INFO_REQUEST_KEY_BLOCK) },
      secretKey,
      REQUEST_KEY_BLOCK_BYTES * 8,
    );
    return new RequestKeyBlock(new Uint8Array(bits));
  }

  requestKey(): Promise<CryptoKey> {
    return importAesKey(this.block.subarray(0, AES_256_KEY_BYTES));
  }

  requestIv(): Uint8Array {
    return this.block.slice(AES_256_KEY_BYTES, AES_256_KEY_BYTES + AES_GCM_IV_BYTES);
  }

  responseKey(): Promise<CryptoKey> {
    return importAesKey(this.block.subarray(AES_256_KEY_BYTES + AES_GCM_IV_BYTES, 2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES));
  }

  responseIvBase(): Uint8Array {
    return this.block.slice(2 * AES_256_KEY_BYTES + AES_GCM_IV_BYTES);
  }

  /** importKey copied what it needed: the raw key bytes are not kept. */
  erase(): void {
    this.block.fill(0);
  }
}

export async function deriveRequestKeys(secretKey: CryptoKey, salt: Uint8Array): Promise<RequestKeys> {
  const block = await RequestKeyBlock.derive(secretKey, salt);
  try {
    const [requestKey, responseKey] = await Promise.all([block.requestKey(), block.responseKey()]);
    return { requestKey, requestIv: block.requestIv(), responseKey, responseIvBase: block.responseIvBase() };
  } finally {
    block.erase();
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
