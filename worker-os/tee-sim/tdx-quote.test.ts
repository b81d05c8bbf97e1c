/**
 * The TDX quote writer against the shared parser and Intel's real quote: the real vector's parts laid
 * out again give its exact bytes, every field lands where parseQuote reads it, and the signatures the
 * writer makes are the ones verify.ts checks (QE report by the PCK key, its REPORTDATA binding the
 * attestation key, header || body by the attestation key).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatBytes, randomBytes, sha256 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { parseQuote, TD_QUOTE_BODY_V4_BYTES } from '../../shared/attestation/tdx/quote.ts';
import { verifyQuoteSignatures } from '../../shared/attestation/tdx/verify.ts';
import { assembleTdxQuote, encodeTdReportBody, encodeTdxQuoteHeader, writeTdxQuote, type QeReportFields, type TdReportBodyFields, type TdxQuoteInput } from './tdx-quote.ts';

const REAL_BYTES = new Uint8Array(readFileSync(new URL('../../test/vectors/tdx/spr-e4/quote.dat', import.meta.url)));
const REAL = parseQuote(REAL_BYTES);
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const gen = async () => (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;

const filled = (length: number, byte: number) => new Uint8Array(length).fill(byte);
const BODY: TdReportBodyFields = {
  teeTcbSvn: filled(16, 1),
  mrSeam: filled(48, 2),
  mrSignerSeam: filled(48, 3),
  seamAttributes: filled(8, 4),
  tdAttributes: filled(8, 5),
  xfam: filled(8, 6),
  mrTd: filled(48, 7),
  mrConfigId: filled(48, 8),
  mrOwner: filled(48, 9),
  mrOwnerConfig: filled(48, 10),
  rtmrs: [filled(48, 11), filled(48, 12), filled(48, 13), filled(48, 14)],
  reportData: filled(64, 15),
};
const QE: QeReportFields = {
  cpuSvn: filled(16, 0x21),
  miscSelect: filled(4, 0x22),
  isvExtProdId: filled(16, 0x23),
  attributes: filled(16, 0x24),
  mrEnclave: filled(32, 0x25),
  mrSigner: filled(32, 0x26),
  configId: filled(64, 0x27),
  isvProdId: 0x0102,
  isvSvn: 0x0304,
  configSvn: 0x0506,
  isvFamilyId: filled(16, 0x28),
};

let attestation: CryptoKeyPair;
let pck: CryptoKeyPair;
let input: TdxQuoteInput;

beforeAll(async () => {
  attestation = await gen();
  pck = await gen();
  input = { userData: filled(20, 0x31), body: BODY, qeReport: QE, qeAuthData: Uint8Array.from({ length: 32 }, (_, i) => i), attestationKey: attestation, pckKey: pck.privateKey, pckChainPem: REAL.pckCertChainPem };
});

const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e) => (e instanceof ObscuraError ? e.code : String(e)));

describe('the TDX quote writer', () => {
  it('lays the real vector\'s parts out into its exact bytes (without the 39 unsigned test bytes Intel\'s sample appends)', () => {
    const out = assembleTdxQuote({
      header: REAL.signedBytes.subarray(0, 48),
      body: REAL.signedBytes.subarray(48),
      signature: REAL.signature,
      attestationKey: REAL.attestationKey,
      qeReport: REAL.qeReport.raw,
      qeReportSignature: REAL.qeReportSignature,
      qeAuthData: REAL.qeAuthData,
      pckChainPem: REAL.pckCertChainPem,
    });
    expect(out).toEqual(REAL_BYTES.subarray(0, REAL_BYTES.length - REAL.trailingBytes));
    expect(encodeTdxQuoteHeader(REAL.header.userData)).toEqual(REAL.signedBytes.subarray(0, 48));
    expect(encodeTdReportBody(REAL.body)).toEqual(REAL.signedBytes.subarray(48, 48 + TD_QUOTE_BODY_V4_BYTES));
  });

  it('writes every field where parseQuote reads it', async () => {
    const q = parseQuote(await writeTdxQuote(input));
    expect(q.header).toMatchObject({ version: 4, attestationKeyType: 2, teeType: 0x81, userData: input.userData });
    expect(q.body).toEqual({ bodyType: 2, ...BODY });
    expect(q.qeReport).toMatchObject({ ...QE });
    expect(q.qeAuthData).toEqual(input.qeAuthData);
    expect(q.pckCertChainDer).toHaveLength(3);
    expect(q.trailingBytes).toBe(0);
    // MRTD at body offset 136, as Intel's layout puts it.
    expect(q.signedBytes.subarray(48 + 136, 48 + 184)).toEqual(BODY.mrTd);
  });

  it('signs what verify.ts checks: the QE report by the PCK key, REPORTDATA binding the attestation key, the quote by the attestation key', async () => {
    const q = parseQuote(await writeTdxQuote(input));
    expect(q.qeReport.reportData.subarray(0, 32)).toEqual(await sha256(concatBytes(q.attestationKey, q.qeAuthData)));
    expect(q.qeReport.reportData.subarray(32)).toEqual(new Uint8Array(32));
    await verifyQuoteSignatures(q, pck.publicKey);
    // Under another PCK key, or with any signed byte changed, the same checks fail.
    expect(await codeOf(verifyQuoteSignatures(q, (await gen()).publicKey))).toBe('ERR_SIGNATURE_INVALID');
    const bytes = await writeTdxQuote(input);
    bytes[48 + 520] ^= 1; // REPORTDATA
    expect(await codeOf(verifyQuoteSignatures(parseQuote(bytes), pck.publicKey))).toBe('ERR_SIGNATURE_INVALID');
  });

  it('gives fresh signatures over the same fields, each verifying', async () => {
    const [a, b] = await Promise.all([writeTdxQuote(input), writeTdxQuote(input)]);
    expect(a.subarray(0, 632)).toEqual(b.subarray(0, 632));
    expect(a).not.toEqual(b); // ECDSA is randomised
    await verifyQuoteSignatures(parseQuote(b), pck.publicKey);
  });

  it('refuses fields of the wrong size with ERR_USAGE', async () => {
    expect(await codeOf(writeTdxQuote({ ...input, body: { ...BODY, mrTd: randomBytes(32) } }))).toBe('ERR_USAGE');
    expect(await codeOf(writeTdxQuote({ ...input, body: { ...BODY, reportData: randomBytes(65) } }))).toBe('ERR_USAGE');
    expect(await codeOf(writeTdxQuote({ ...input, userData: randomBytes(16) }))).toBe('ERR_USAGE');
    expect(await codeOf(writeTdxQuote({ ...input, qeReport: { ...QE, isvSvn: 0x10000 } }))).toBe('ERR_USAGE');
    expect(await codeOf(writeTdxQuote({ ...input, body: { ...BODY, rtmrs: BODY.rtmrs.slice(0, 3) as unknown as TdReportBodyFields['rtmrs'] } }))).toBe('ERR_USAGE');
  });
});
