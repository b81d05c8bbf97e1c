/**
 * HPKE suites: X-Wing (ML-KEM-768 + X25519) first, X25519 as the fallback; sealing and opening an
 * inference secret with each; key pairs derived from a seed are stable (the service restarts with the
 * same key). The offered list is bound in the attested core: see attestation-service/service.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';
import { coreReportData, encodeAttestedCore, type AttestedCore } from './attested-core.ts';
import { LABEL_SECRET_TO_SERVICE } from './constants.ts';
import { HPKE_SUITE_X25519, HPKE_SUITE_XWING, chooseHpkeSuite, deriveHpkeKeyPair, generateHpkeKeyPair } from './hpke-suites.ts';
import { openSecret, sealSecret } from './inference-secret.ts';

describe('HPKE suites', () => {
  it('picks X-Wing when offered, X25519 otherwise, and refuses when neither is', () => {
    expect(chooseHpkeSuite([HPKE_SUITE_X25519, HPKE_SUITE_XWING])).toBe(HPKE_SUITE_XWING);
    expect(chooseHpkeSuite([HPKE_SUITE_XWING])).toBe(HPKE_SUITE_XWING);
    expect(chooseHpkeSuite([HPKE_SUITE_X25519])).toBe(HPKE_SUITE_X25519);
    expect(() => chooseHpkeSuite(['DHKEM(P-256,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM'])).toThrow(ObscuraError);
  });

  it('generates X-Wing keys by default (1216-byte public keys)', async () => {
    const kp = await generateHpkeKeyPair();
    expect(kp.suite).toBe(HPKE_SUITE_XWING);
    expect(kp.publicKey.length).toBe(1216);
  });

  for (const suite of [HPKE_SUITE_XWING, HPKE_SUITE_X25519] as const) {
    it(`seals and opens an inference secret with ${suite.split('/')[0]}`, async () => {
      const kp = await generateHpkeKeyPair(suite);
      const secret = randomBytes(32);
      const context = randomBytes(32);
      const meta = { sid: randomBytes(16), manifestHead: randomBytes(32), expiresAt: 1_800_000_000_000 };
      const sealed = await sealSecret({ suite, recipientPublicKey: kp.publicKey, label: LABEL_SECRET_TO_SERVICE, context, secret, meta });
      if (suite === HPKE_SUITE_XWING) expect(sealed.enc.length).toBe(1120);
      expect(toHex(await openSecret({ sealed, recipientKey: kp.privateKey, label: LABEL_SECRET_TO_SERVICE, context }))).toBe(toHex(secret));
      // Another context (another bundle) does not open it.
      await expect(openSecret({ sealed, recipientKey: kp.privateKey, label: LABEL_SECRET_TO_SERVICE, context: randomBytes(32) })).rejects.toMatchObject({ code: 'ERR_OPEN_FAILED' });
      // Nor does a changed header (the suite name is authenticated).
      await expect(openSecret({ sealed: { ...sealed, expiresAt: sealed.expiresAt + 1 }, recipientKey: kp.privateKey, label: LABEL_SECRET_TO_SERVICE, context })).rejects.toMatchObject({ code: 'ERR_OPEN_FAILED' });
    });
  }

  it('derives the same key pair from the same seed', async () => {
    const seed = randomBytes(32);
    for (const suite of [HPKE_SUITE_XWING, HPKE_SUITE_X25519] as const) {
      const a = await deriveHpkeKeyPair(suite, seed);
      const b = await deriveHpkeKeyPair(suite, seed);
      expect(toHex(a.publicKey)).toBe(toHex(b.publicKey));
    }
  });

  it('binds the offered list in the core: stripping X-Wing changes report_data', async () => {
    const xwing = await generateHpkeKeyPair(HPKE_SUITE_XWING);
    const x25519 = await generateHpkeKeyPair(HPKE_SUITE_X25519);
    const core: AttestedCore = {
      v: 1,
      tlsKeySha256: randomBytes(32),
      hpke: [{ suite: xwing.suite, publicKey: xwing.publicKey }, { suite: x25519.suite, publicKey: x25519.publicKey }],
      meshCaSha256: randomBytes(32),
      manifestHead: randomBytes(32),
      checkpointKey: new Uint8Array(65).fill(4, 0, 1),
      issuedAt: 1,
      expiresAt: 2,
    };
    const stripped = { ...core, hpke: core.hpke.slice(1) };
    expect(toHex(await coreReportData(encodeAttestedCore(stripped)))).not.toBe(toHex(await coreReportData(encodeAttestedCore(core))));
  });
});
