/**
 * TDX evidence on the wire (the quote and the collateral the worker ships) and through
 * verifyEvidenceAgainstReference with the real Intel vector (test/vectors/tdx/spr-e4) under Intel's
 * real root at 2023-07-01, the only time its collateral is current. Every signature, chain and CRL of
 * that vector verifies, but Intel's TCB info has no level its platform reaches ("TCB not supported",
 * see tdx/verify.test.ts): it has no TCB status at all, so it is refused whatever statuses a reference
 * accepts. The admitted path (facts of a status that is accepted) is covered with the simulated TDX
 * machine in attestation-service/tdx-registration.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { concatBytes, sha256, utf8 } from '../bytes.ts';
import { decodeStrict, encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { encodeEvidence, parseEvidence, type TdxEvidence } from './evidence.ts';
import { parseQuote } from './tdx/quote.ts';
import { TDX_TCB_STATUSES } from './tdx/tcb-status.ts';
import { verifyEvidenceAgainstReference, type TdxReference } from './verify-evidence.ts';
import { AMD_ARK_MILAN_PEM } from './sev-snp/amd-roots.ts';

const DIR = new URL('../../test/vectors/tdx/', import.meta.url);
const bin = (p: string) => new Uint8Array(readFileSync(new URL(p, DIR)));
const text = (p: string) => readFileSync(new URL(p, DIR), 'utf8');

const INTEL_ROOT = text('intel_sgx_root_ca.pem');
const AT = new Date('2023-07-01T00:00:00Z');
const REAL: TdxEvidence = {
  platform: 'tdx',
  quote: bin('spr-e4/quote.dat'),
  collateral: {
    tcbInfoJson: bin('spr-e4/tcb_info.json'),
    tcbInfoIssuerChainPem: text('spr-e4/tcb_info_issuer_chain.pem'),
    qeIdentityJson: bin('spr-e4/qe_identity.json'),
    qeIdentityIssuerChainPem: text('spr-e4/qe_identity_issuer_chain.pem'),
    pckCrlDer: bin('spr-e4/pck_crl.der'),
    pckCrlIssuerChainPem: text('spr-e4/pck_crl_issuer_chain.pem'),
    rootCrlDer: bin('spr-e4/root_crl.der'),
  },
};
const REAL_MRTD = '6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb';

const codeOf = (p: Promise<unknown>) => p.then(() => 'admitted', (e) => (e instanceof ObscuraError ? e.code : String(e)));
const wire = (e: unknown) => parseEvidence(decodeStrict(encodeDeterministic(e), 'evidence'), 'evidence');
const reference = (r: Partial<TdxReference> = {}): { tdx: TdxReference } => ({ tdx: { trustedRoots: [INTEL_ROOT], mrTd: [REAL_MRTD], ...r } });

describe('TDX evidence on the wire', () => {
  it('round-trips the real quote and its collateral through deterministic CBOR, byte for byte', async () => {
    const back = wire(encodeEvidence(REAL));
    expect(back).toEqual(REAL);
    // The README's binding fact holds for what came back: the QE vouches for the attestation key.
    const quote = parseQuote((back as TdxEvidence).quote);
    expect(quote.qeReport.reportData.subarray(0, 32)).toEqual(await sha256(concatBytes(quote.attestationKey, quote.qeAuthData)));
    expect(quote.qeReport.reportData.subarray(32)).toEqual(new Uint8Array(32));
  });

  it('refuses wrong types, empty or oversized parts and a missing collateral with ERR_MALFORMED', () => {
    const good = encodeEvidence(REAL) as { collateral: Record<string, unknown> } & Record<string, unknown>;
    const cases: Record<string, unknown>[] = [
      { ...good, quote: 'quote' },
      { ...good, quote: new Uint8Array(0) },
      { ...good, quote: new Uint8Array(64 * 1024 + 1) },
      { ...good, collateral: undefined },
      { ...good, collateral: [] },
      { ...good, collateral: { ...good.collateral, tcbInfoJson: text('spr-e4/tcb_info.json') } },
      { ...good, collateral: { ...good.collateral, qeIdentityJson: new Uint8Array(128 * 1024 + 1) } },
      { ...good, collateral: { ...good.collateral, pckCrlDer: new Uint8Array(256 * 1024 + 1) } },
      { ...good, collateral: { ...good.collateral, rootCrlDer: undefined } },
      { ...good, collateral: { ...good.collateral, pckCrlIssuerChainPem: bin('spr-e4/pck_crl_issuer_chain.pem') } },
      { ...good, collateral: { ...good.collateral, tcbInfoIssuerChainPem: 'x'.repeat(16 * 1024 + 1) } },
    ];
    for (const c of cases) {
      expect(() => wire(c), JSON.stringify(Object.keys(c))).toThrowError(expect.objectContaining({ code: 'ERR_MALFORMED' }));
    }
    expect(() => wire({ ...good, platform: 'cca' })).toThrowError(expect.objectContaining({ code: 'ERR_UNSUPPORTED_VERSION' }));
  });
});

describe('the real TDX vector through verifyEvidenceAgainstReference', () => {
  it('is refused at Intel\'s TCB matching (no level for its platform), whatever statuses the reference accepts', async () => {
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, reference(), AT))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, reference({ acceptedTcbStatuses: TDX_TCB_STATUSES, allowDebug: true }), AT))).toBe('ERR_VALUE_MISMATCH');
    await expect(verifyEvidenceAgainstReference(REAL, reference({ acceptedTcbStatuses: TDX_TCB_STATUSES }), AT)).rejects.toThrow(/below every TCB level/);
  });

  it('fails earlier, with the code of the step, when anything before the TCB matching is wrong', async () => {
    // Each of these is checked before the TCB status: reaching ERR_VALUE_MISMATCH above means they passed.
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, reference({ trustedRoots: [AMD_ARK_MILAN_PEM] }), AT))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, reference({ trustedRoots: [] }), AT))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, { 'sev-snp': { trustedRoots: [INTEL_ROOT] } }, AT))).toBe('ERR_POLICY_VIOLATION');
    expect(await codeOf(verifyEvidenceAgainstReference(REAL, reference(), new Date('2026-01-01T00:00:00Z')))).toBe('ERR_EXPIRED');
    const quote = REAL.quote.slice();
    quote[48 + 136] ^= 1; // MRTD: covered by the attestation key's signature
    expect(await codeOf(verifyEvidenceAgainstReference({ ...REAL, quote }, reference(), AT))).toBe('ERR_SIGNATURE_INVALID');
    // The signature covers the tcbInfo member's bytes as served: the same JSON re-serialised is refused.
    const served = new TextDecoder().decode(REAL.collateral.tcbInfoJson);
    const reserialised = utf8(JSON.stringify(JSON.parse(served), null, 1));
    expect(reserialised).not.toEqual(REAL.collateral.tcbInfoJson);
    expect(await codeOf(verifyEvidenceAgainstReference({ ...REAL, collateral: { ...REAL.collateral, tcbInfoJson: reserialised } }, reference(), AT))).toBe(
      'ERR_SIGNATURE_INVALID',
    );
  });
});
