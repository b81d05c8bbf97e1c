/**
 * A client's allowance for its inference secret to reach workers admitted under a later manifest.
 *
 * A secret is bound to the manifest head it was sealed under: a manifest update that admits new code
 * cannot reach it. Only the secret's holder may widen that, one later head at a time, by proving it
 * holds the secret: an HMAC-SHA256 under a key derived from the secret (HKDF, its own label) over the
 * secret id and both heads. The service, which holds the secret too, checks the tag; the edge and the
 * operator, who never see the secret, cannot forge one.
 */
import { bufferOf, utf8 } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { SECRET_ID_BYTES } from './constants.ts';

export const SECRET_ALLOWANCE_CONTENT_TYPE = 'application/vnd.obscura.secret-allowance+cbor';
export const LABEL_SECRET_ALLOWANCE_KEY = 'obscura/v1 secret allowance key';
const PURPOSE_SECRET_ALLOWANCE = 'obscura/v1 secret allowance';
const MANIFEST_HEAD_BYTES = 32;
const TAG_BYTES = 32;
const ALLOWANCE_KEY_BITS = 256;

export interface SecretAllowanceFields {
  sid: Uint8Array;
  /** The head the secret was sealed under. */
  fromHead: Uint8Array;
  /** The later head whose workers may now have it. */
  toHead: Uint8Array;
}

export interface SecretAllowance extends SecretAllowanceFields {
  tag: Uint8Array;
}

/**
 * The allowance key, from the secret as an HKDF base key (as importInferenceSecret makes it): the
 * client derives it once per secret; the service derives it from the secret it holds.
 */
export async function deriveSecretAllowanceKey(secretKey: CryptoKey): Promise<CryptoKey> {
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new ArrayBuffer(0), info: bufferOf(utf8(LABEL_SECRET_ALLOWANCE_KEY)) }, secretKey, ALLOWANCE_KEY_BITS),
  );
  try {
    return await crypto.subtle.importKey('raw', bufferOf(bits), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  } finally {
    bits.fill(0);
  }
}

function signedBytes(f: SecretAllowanceFields): ArrayBuffer {
  return bufferOf(encodeDeterministic({ purpose: PURPOSE_SECRET_ALLOWANCE, sid: f.sid, fromHead: f.fromHead, toHead: f.toHead }));
}

export async function signSecretAllowance(allowanceKey: CryptoKey, fields: SecretAllowanceFields): Promise<SecretAllowance> {
  const tag = new Uint8Array(await crypto.subtle.sign('HMAC', allowanceKey, signedBytes(fields)));
  return { ...fields, tag };
}

/** WebCrypto's HMAC verify compares in constant time. */
export async function verifySecretAllowance(allowanceKey: CryptoKey, allowance: SecretAllowance): Promise<void> {
  const ok = await crypto.subtle.verify('HMAC', allowanceKey, bufferOf(allowance.tag), signedBytes(allowance));
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the allowance is not signed with this secret');
}

export function encodeSecretAllowance(a: SecretAllowance): Uint8Array {
  return encodeDeterministic({ sid: a.sid, fromHead: a.fromHead, toHead: a.toHead, tag: a.tag });
}

export function parseSecretAllowance(bytes: Uint8Array): SecretAllowance {
  const what = 'secret allowance';
  const m = asRecord(decodeStrict(bytes, what), what);
  for (const key of Object.keys(m)) {
    if (!['sid', 'fromHead', 'toHead', 'tag'].includes(key)) throw new ObscuraError('ERR_MALFORMED', `${what} has an unknown field ${key}`);
  }
  return {
    sid: fieldBytes(m, 'sid', what, SECRET_ID_BYTES),
    fromHead: fieldBytes(m, 'fromHead', what, MANIFEST_HEAD_BYTES),
    toHead: fieldBytes(m, 'toHead', what, MANIFEST_HEAD_BYTES),
    tag: fieldBytes(m, 'tag', what, TAG_BYTES),
  };
}
