/**
 * Golden test: what a receiving attestation service's evidence binds in a state handoff, the sealed
 * state's header (HPKE aad), and the seal itself (X-Wing): it opens only for the key it was sealed to,
 * with the header it was sealed with. If a golden value changes, services of different builds can no
 * longer hand state to each other: change the protocol version, never these bytes.
 */
import { describe, expect, it } from 'vitest';
import { fromHex, randomBytes, sha512, toHex, utf8 } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';
import { generateHpkeKeyPair, HPKE_SUITE_X25519, HPKE_SUITE_XWING } from './hpke-suites.ts';
import { workerRegistrationReportData } from './worker-registration.ts';
import {
  encodeSealedStateHandoff,
  encodeStateHandoffHeader,
  encodeStateHandoffRequest,
  evidenceDigest,
  openStateHandoff,
  parseSealedStateHandoff,
  parseStateHandoffRequest,
  sealStateHandoff,
  stateHandoffReportData,
  type StateHandoffBinding,
  type StateHandoffHeader,
} from './state-handoff.ts';

const binding: StateHandoffBinding = {
  challenge: new Uint8Array(32).fill(0x11),
  sourceCoreSha256: new Uint8Array(32).fill(0x22),
  hpkeSuite: HPKE_SUITE_XWING,
  hpkePublicKey: new Uint8Array(8).fill(0x33),
  tlsKeySha256: new Uint8Array(32).fill(0x44),
  endpoint: 'https://as-b.example:8443',
};

// Deterministic CBOR (keys by encoded length, then bytes): purpose, endpoint, challenge, hpkeSuite,
// tlsKeySha256, hpkePublicKey, sourceCoreSha256.
const GOLDEN_BINDING_CBOR =
  'a767707572706f736578186f6273637572612f76312073746174652068616e646f666668656e64706f696e74781968747470733a2f2f61732d622e6578616d706c653a38343433696368616c6c656e6765582011111111111111111111111111111111111111111111111111111111111111116968706b6553756974657831582d57696e67284d4c2d4b454d2d3736382c583235353139292f484b44462d5348413235362f4145532d3235362d47434d6c746c734b6579536861323536582044444444444444444444444444444444444444444444444444444444444444446d68706b655075626c69634b657948333333333333333370736f75726365436f726553686132353658202222222222222222222222222222222222222222222222222222222222222222';
const GOLDEN_REPORT_DATA =
  '504a0c87c43602108d39cde03284c88e7de39d2eb960abb4668e82053ed7754f604137cae09aec6a9815d4f5753dc6dc0a575a2895f1552987b8d3337a8b5037';

const header: StateHandoffHeader = {
  v: 1,
  suite: HPKE_SUITE_XWING,
  sourceCoreSha256: new Uint8Array(32).fill(0x22),
  targetEvidenceSha256: new Uint8Array(32).fill(0x55),
  manifestHead: new Uint8Array(32).fill(0x66),
  handedOffAt: 1_800_000_000_000,
};
const GOLDEN_HEADER_CBOR =
  'a66176016573756974657831582d57696e67284d4c2d4b454d2d3736382c583235353139292f484b44462d5348413235362f4145532d3235362d47434d6b68616e6465644f666641741b000001a3185c50006c6d616e6966657374486561645820666666666666666666666666666666666666666666666666666666666666666670736f75726365436f7265536861323536582022222222222222222222222222222222222222222222222222222222222222227474617267657445766964656e636553686132353658205555555555555555555555555555555555555555555555555555555555555555';
const GOLDEN_EVIDENCE_DIGEST = 'dfde39db86c7b5465fea44ef384cdae120a05f1f46a56a7381630b0eff4d3942';

const codeOf = async (p: Promise<unknown>) => p.then(() => 'opened', (e) => (e instanceof ObscuraError ? e.code : String(e)));

describe('state handoff binding (golden)', () => {
  it('report_data = SHA-512 of the purpose and the binding in deterministic CBOR', async () => {
    expect(toHex(await sha512(fromHex(GOLDEN_BINDING_CBOR)))).toBe(GOLDEN_REPORT_DATA);
    expect(toHex(await stateHandoffReportData(binding))).toBe(GOLDEN_REPORT_DATA);
  });

  it('every bound field changes it, and it differs from a worker registration over the same bytes', async () => {
    const base = toHex(await stateHandoffReportData(binding));
    const variants: Partial<StateHandoffBinding>[] = [
      { challenge: new Uint8Array(32).fill(0x12) },
      { sourceCoreSha256: new Uint8Array(32).fill(0x23) },
      { hpkeSuite: HPKE_SUITE_X25519 },
      { hpkePublicKey: new Uint8Array(8).fill(0x34) },
      { tlsKeySha256: new Uint8Array(32).fill(0x45) },
      { endpoint: 'https://as-c.example:8443' },
    ];
    for (const v of variants) expect(toHex(await stateHandoffReportData({ ...binding, ...v }))).not.toBe(base);
    const registration = await workerRegistrationReportData({ nonce: binding.challenge, hpkePublicKey: binding.hpkePublicKey, hpkeSuite: binding.hpkeSuite, certKeySha256: binding.tlsKeySha256 });
    expect(toHex(registration)).not.toBe(base);
  });

  it('pins the sealed state header (the HPKE aad) and the evidence digest', async () => {
    expect(toHex(encodeStateHandoffHeader(header))).toBe(GOLDEN_HEADER_CBOR);
    expect(toHex(await evidenceDigest({ platform: 'sev-snp', report: new Uint8Array(4).fill(1), vcek: new Uint8Array(4).fill(2), ask: new Uint8Array(4).fill(3) }))).toBe(GOLDEN_EVIDENCE_DIGEST);
  });

  it('round-trips a request and refuses one with a bad endpoint or challenge', () => {
    const evidence = { platform: 'sev-snp' as const, report: randomBytes(1184), vcek: randomBytes(16), ask: randomBytes(16) };
    const req = { v: 1, evidence, ...binding };
    expect(parseStateHandoffRequest(encodeStateHandoffRequest(req))).toEqual(req);
    expect(() => parseStateHandoffRequest(encodeStateHandoffRequest({ ...req, endpoint: 'http://plain.example' }))).toThrow(/endpoint/);
    expect(() => parseStateHandoffRequest(encodeStateHandoffRequest({ ...req, challenge: new Uint8Array(16) }))).toThrow(ObscuraError);
    expect(() => parseStateHandoffRequest(encodeStateHandoffRequest({ ...req, v: 2 }))).toThrow(/version/);
  });
});

describe('the sealed state', () => {
  const state = utf8('the whole service state, as the service encodes it');
  const expected = { sourceCoreSha256: header.sourceCoreSha256, targetEvidenceSha256: header.targetEvidenceSha256, suite: HPKE_SUITE_XWING };

  it('opens (X-Wing) for the key it was sealed to, after a round trip through its encoding', async () => {
    const key = await generateHpkeKeyPair(HPKE_SUITE_XWING);
    const sealed = parseSealedStateHandoff(encodeSealedStateHandoff(await sealStateHandoff({ header, recipientPublicKey: key.publicKey, state })));
    expect(toHex(sealed.ct)).not.toContain(toHex(state));
    expect(toHex(await openStateHandoff({ sealed, recipientKey: key.privateKey, expected }))).toBe(toHex(state));
  });

  it('does not open for another key, with a changed header, or for another exchange', async () => {
    const key = await generateHpkeKeyPair(HPKE_SUITE_XWING);
    const other = await generateHpkeKeyPair(HPKE_SUITE_XWING);
    const sealed = await sealStateHandoff({ header, recipientPublicKey: key.publicKey, state });
    expect(await codeOf(openStateHandoff({ sealed, recipientKey: other.privateKey, expected }))).toBe('ERR_OPEN_FAILED');
    // A changed head or time is not what was sealed: the aad (and the info) no longer match.
    expect(await codeOf(openStateHandoff({ sealed: { ...sealed, manifestHead: new Uint8Array(32).fill(0x67) }, recipientKey: key.privateKey, expected }))).toBe('ERR_OPEN_FAILED');
    expect(await codeOf(openStateHandoff({ sealed: { ...sealed, handedOffAt: sealed.handedOffAt + 1 }, recipientKey: key.privateKey, expected }))).toBe('ERR_OPEN_FAILED');
    // Sealed for another exchange (another source core, another target evidence): refused before opening.
    expect(await codeOf(openStateHandoff({ sealed, recipientKey: key.privateKey, expected: { ...expected, targetEvidenceSha256: new Uint8Array(32) } }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(openStateHandoff({ sealed, recipientKey: key.privateKey, expected: { ...expected, sourceCoreSha256: new Uint8Array(32) } }))).toBe('ERR_VALUE_MISMATCH');
  });
});
