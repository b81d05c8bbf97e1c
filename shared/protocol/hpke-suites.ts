/**
 * HPKE (RFC 9180) suites the protocol offers, through @hpke/core. The list a service offers is bound in
 * its attested core, so an edge cannot strip the strongest suite and force a weaker one.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { ObscuraError } from '../errors.ts';

export const HPKE_SUITE_X25519 = 'DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM';
export type HpkeSuiteName = typeof HPKE_SUITE_X25519;

/** Client preference order: the first suite both sides have wins. */
export const HPKE_SUITES_BY_PREFERENCE: readonly HpkeSuiteName[] = [HPKE_SUITE_X25519];

const suites = new Map<string, CipherSuite>();

export function hpkeSuite(name: string): CipherSuite {
  let suite = suites.get(name);
  if (!suite) {
    if (name !== HPKE_SUITE_X25519) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${name} is not supported`);
    suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    suites.set(name, suite);
  }
  return suite;
}

export interface HpkeKeyPair {
  suite: HpkeSuiteName;
  publicKey: Uint8Array;
  privateKey: CryptoKey;
}

export async function generateHpkeKeyPair(name: HpkeSuiteName = HPKE_SUITE_X25519): Promise<HpkeKeyPair> {
  const suite = hpkeSuite(name);
  const kp = await suite.kem.generateKeyPair();
  return { suite: name, publicKey: new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey)), privateKey: kp.privateKey };
}

/** Pick the strongest suite the service offers; fails rather than silently taking none. */
export function chooseHpkeSuite(offered: readonly string[]): HpkeSuiteName {
  for (const s of HPKE_SUITES_BY_PREFERENCE) if (offered.includes(s)) return s;
  throw new ObscuraError('ERR_DOWNGRADE', `the service offers no HPKE suite this client accepts (offered: ${offered.join(', ') || 'none'})`);
}
