/**
 * HPKE (RFC 9180) suites the protocol offers, through @hpke/core. X-Wing (ML-KEM-768 + X25519, a hybrid
 * post-quantum KEM) comes first; X25519 stays as the fallback for peers without it. The list a service
 * offers is bound in its attested core, so an edge cannot strip the strongest suite and force a weaker
 * one.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { XWing } from '@hpke/hybridkem-x-wing';
import { bufferOf, concatBytes, randomBytes, utf8 } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';

export const HPKE_SUITE_XWING = 'X-Wing(ML-KEM-768,X25519)/HKDF-SHA256/AES-256-GCM';
export const HPKE_SUITE_X25519 = 'DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM';
export type HpkeSuiteName = typeof HPKE_SUITE_XWING | typeof HPKE_SUITE_X25519;

/** Preference order (clients pick the first suite both sides have; services offer them in this order). */
export const HPKE_SUITES_BY_PREFERENCE: readonly HpkeSuiteName[] = [HPKE_SUITE_XWING, HPKE_SUITE_X25519];

/** Bytes of key material a key pair is derived from (RFC 9180 DeriveKeyPair's ikm). */
export const HPKE_SEED_BYTES = 32;

const suites = new Map<string, CipherSuite>();

export function isHpkeSuiteName(name: string): name is HpkeSuiteName {
  return (HPKE_SUITES_BY_PREFERENCE as readonly string[]).includes(name);
}

export function hpkeSuite(name: string): CipherSuite {
  let suite = suites.get(name);
  if (!suite) {
    if (!isHpkeSuiteName(name)) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${name} is not supported`);
    const kem = name === HPKE_SUITE_XWING ? new XWing() : new DhkemX25519HkdfSha256();
    suite = new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    suites.set(name, suite);
  }
  return suite;
}

export interface HpkeKeyPair {
  suite: HpkeSuiteName;
  publicKey: Uint8Array;
  privateKey: CryptoKey;
}

/**
 * The key pair derived from `seed` (RFC 9180 DeriveKeyPair): a service keeps the seed sealed and
 * derives the same key pair after a restart.
 */
export async function deriveHpkeKeyPair(name: HpkeSuiteName, seed: Uint8Array): Promise<HpkeKeyPair> {
  if (seed.length !== HPKE_SEED_BYTES) throw new ObscuraError('ERR_USAGE', `an HPKE key seed is ${HPKE_SEED_BYTES} bytes`);
  const suite = hpkeSuite(name);
  const kp = await suite.kem.deriveKeyPair(bufferOf(seed));
  return { suite: name, publicKey: new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey)), privateKey: kp.privateKey };
}

export async function generateHpkeKeyPair(name: HpkeSuiteName = HPKE_SUITES_BY_PREFERENCE[0]): Promise<HpkeKeyPair> {
  const seed = randomBytes(HPKE_SEED_BYTES);
  try {
    return await deriveHpkeKeyPair(name, seed);
  } finally {
    seed.fill(0);
  }
}

/** Refuse a public key that does not parse for its suite (wrong length, not a point). */
export async function checkHpkePublicKey(name: string, publicKey: Uint8Array): Promise<void> {
  const suite = hpkeSuite(name);
  try {
    await suite.kem.deserializePublicKey(bufferOf(publicKey));
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `the ${name} public key is not valid`, { cause });
  }
}

/** Pick the strongest suite the service offers; fails rather than silently taking none. */
export function chooseHpkeSuite(offered: readonly string[]): HpkeSuiteName {
  for (const s of HPKE_SUITES_BY_PREFERENCE) if (offered.includes(s)) return s;
  throw new ObscuraError('ERR_DOWNGRADE', `the service offers no HPKE suite this client accepts (offered: ${offered.join(', ') || 'none'})`);
}

/**
 * Single-shot HPKE bound to a purpose: `info` = label ‖ context (a core digest, or a worker key
 * digest), `aad` = the cleartext header. Inference secrets and model keys both travel this way.
 */
export async function sealBound(input: {
  suite: string;
  recipientPublicKey: Uint8Array;
  label: string;
  context: Uint8Array;
  plaintext: Uint8Array;
  aad: Uint8Array;
}): Promise<{ enc: Uint8Array; ct: Uint8Array }> {
  const suite = hpkeSuite(input.suite);
  const recipientPublicKey = await suite.kem.deserializePublicKey(bufferOf(input.recipientPublicKey));
  const sealed = await suite.seal({ recipientPublicKey, info: bufferOf(concatBytes(utf8(input.label), input.context)) }, bufferOf(input.plaintext), bufferOf(input.aad));
  return { enc: new Uint8Array(sealed.enc), ct: new Uint8Array(sealed.ct) };
}

/** Opens what sealBound sealed; any failure is ERR_OPEN_FAILED with `what` in the message. */
export async function openBound(input: {
  suite: string;
  recipientKey: CryptoKey;
  label: string;
  context: Uint8Array;
  enc: Uint8Array;
  ct: Uint8Array;
  aad: Uint8Array;
  what: string;
}): Promise<Uint8Array> {
  const suite = hpkeSuite(input.suite);
  try {
    const pt = await suite.open(
      { recipientKey: input.recipientKey, enc: bufferOf(input.enc), info: bufferOf(concatBytes(utf8(input.label), input.context)) },
      bufferOf(input.ct),
      bufferOf(input.aad),
    );
    return new Uint8Array(pt);
  } catch (cause) {
    throw new ObscuraError('ERR_OPEN_FAILED', `${input.what} does not open: sealed for another key, bundle or purpose, or changed`, { cause });
  }
}
