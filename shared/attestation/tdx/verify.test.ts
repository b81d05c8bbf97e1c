/**
 * The real Intel TDX vector (test/vectors/tdx/spr-e4) at 2023-07-01T00:00:00Z, and tampering with
 * each region of it. Every signature, chain, CRL and collateral window verifies; Intel's TCB
 * matching then finds no level for this platform in the sample TCB info (see the last describe).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { fromBase64, toHex } from '../../bytes.ts';
import { parseCrl } from '../x509/index.ts';
import { verifyTdxEvidence } from './evidence.ts';
import { verifyPckChain } from './pck-chain.ts';
import { matchQeIdentity, verifyQeIdentity } from './qe-identity.ts';
import { parseQuote } from './quote.ts';
import type { IntelTrust } from './tcb-signing.ts';
import { verifyTcbInfo } from './tcb-info.ts';
import { evaluateTcbStatus } from './tcb-status.ts';
import { loadTrustedRoots, verifyQuote, verifyQuoteSignatures, type TdxCollateral } from './verify.ts';

const DIR = new URL('../../../test/vectors/', import.meta.url);
const bin = (p: string) => new Uint8Array(readFileSync(new URL(p, DIR)));
const text = (p: string) => readFileSync(new URL(p, DIR), 'utf8');

const QUOTE = bin('tdx/spr-e4/quote.dat');
const INTEL_ROOT = text('tdx/intel_sgx_root_ca.pem');
const COLLATERAL: TdxCollateral = {
  tcbInfoJson: text('tdx/spr-e4/tcb_info.json'),
  tcbInfoIssuerChainPem: text('tdx/spr-e4/tcb_info_issuer_chain.pem'),
  qeIdentityJson: text('tdx/spr-e4/qe_identity.json'),
  qeIdentityIssuerChainPem: text('tdx/spr-e4/qe_identity_issuer_chain.pem'),
  pckCrlDer: bin('tdx/spr-e4/pck_crl.der'),
  pckCrlIssuerChainPem: text('tdx/spr-e4/pck_crl_issuer_chain.pem'),
  rootCrlDer: bin('tdx/spr-e4/root_crl.der'),
};
const AT = new Date('2023-07-01T00:00:00Z');

/** Where the TCB matching stops for this vector; reaching it means every earlier check passed. */
const BASELINE = 'ERR_VALUE_MISMATCH';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
  return 'ok';
}

function run(opts: { quote?: Uint8Array; collateral?: Partial<TdxCollateral>; roots?: (string | Uint8Array)[]; at?: Date }) {
  return verifyTdxEvidence({
    quote: opts.quote ?? QUOTE,
    collateral: { ...COLLATERAL, ...opts.collateral },
    trustedRoots: opts.roots ?? [INTEL_ROOT],
    at: opts.at ?? AT,
  });
}

function flip(bytes: Uint8Array, at: number, mask = 0x01): Uint8Array {
  const out = bytes.slice();
  out[at] ^= mask;
  return out;
}

function trust(at = AT): IntelTrust {
  return { roots: loadTrustedRoots([INTEL_ROOT]), rootCrl: parseCrl(COLLATERAL.rootCrlDer), at };
}

// Offsets in the quote: header 0..48, body 48..632, signature data from 636.
const BODY = 48;
const SIG_AT = 636;
const ATT_KEY_AT = SIG_AT + 64;
const QE_REPORT_AT = SIG_AT + 128 + 6;
const QE_SIG_AT = QE_REPORT_AT + 384;
const QE_AUTH_AT = QE_SIG_AT + 64 + 2;
const PEM_AT = QE_AUTH_AT + 32 + 6;

describe('the real TDX vector at 2023-07-01', () => {
  it('PCK chain: validated to the injected Intel root with both CRLs; SGX extensions read', async () => {
    const q = parseQuote(QUOTE);
    const pck = await verifyPckChain(q.pckCertChainDer, parseCrl(COLLATERAL.pckCrlDer), COLLATERAL.pckCrlIssuerChainPem, trust());
    expect(pck.leaf.subject).toContain('CN=Intel SGX PCK Certificate');
    expect(pck.leaf.serialNumberHex).toBe('00bba6c175d838b8df3900cc3411f24f512d104102');
    expect(toHex(pck.extensions.fmspc)).toBe('50806f000000');
    expect(toHex(pck.extensions.pceId)).toBe('0000');
    expect(pck.extensions.tcbComponents).toEqual([3, 3, 2, 2, 2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(pck.extensions.pceSvn).toBe(11);
    // QE report signed by the PCK leaf, QE report data binding the attestation key, quote signature.
    await verifyQuoteSignatures(q, pck.key);
  });

  it('TCB info and QE identity: signed over their raw JSON members by the TCB Signing cert', async () => {
    const info = await verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, trust());
    expect(toHex(info.fmspc)).toBe('50806f000000');
    expect(info.tcbEvaluationDataNumber).toBe(15);
    expect(info.tcbLevels.map((l) => l.tcbStatus)).toEqual(['UpToDate', 'OutOfDate']);
    const qe = await verifyQeIdentity(COLLATERAL.qeIdentityJson, COLLATERAL.qeIdentityIssuerChainPem, trust());
    expect(matchQeIdentity(parseQuote(QUOTE).qeReport, qe).tcbStatus).toBe('UpToDate');
  });

  it('TCB status: the sample TCB info has no level this platform reaches (Intel: "TCB not supported")', async () => {
    const q = parseQuote(QUOTE);
    const pck = await verifyPckChain(q.pckCertChainDer, parseCrl(COLLATERAL.pckCrlDer), COLLATERAL.pckCrlIssuerChainPem, trust());
    const info = await verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, trust());
    // PCK SGX TCB 3.3.2.2.2.1.0.2 is below both levels' 5.5.2.2.3.1.0.3, and TEE_TCB_SVN 3.0.4 below
    // their TDX 3.0.5: Intel's QVL and go-tdx-guest refuse this quote with this TCB info too.
    expect(() => evaluateTcbStatus(q.body, pck.extensions, info, { tcbStatus: 'UpToDate', advisoryIds: [] })).toThrow(
      /SGX TCB .* is below every TCB level/,
    );
    expect(await codeOf(verifyQuote(QUOTE, { collateral: COLLATERAL, trustedRoots: [INTEL_ROOT], at: AT }))).toBe(BASELINE);
    expect(await codeOf(run({}))).toBe(BASELINE);
  });

  it('accepts the roots as DER as well as PEM', async () => {
    const der = fromBase64(INTEL_ROOT.replace(/-----[A-Z ]+-----/g, ''));
    expect(await codeOf(run({ roots: [der] }))).toBe(BASELINE);
  });
});

describe('tampering with the quote is refused', () => {
  const regions: [string, number, string][] = [
    ['header user data', 28, 'ERR_SIGNATURE_INVALID'],
    ['TEE_TCB_SVN', BODY + 0, 'ERR_SIGNATURE_INVALID'],
    ['MRSEAM', BODY + 16, 'ERR_SIGNATURE_INVALID'],
    ['MRSIGNERSEAM', BODY + 64, 'ERR_SIGNATURE_INVALID'],
    ['SEAMATTRIBUTES', BODY + 112, 'ERR_SIGNATURE_INVALID'],
    ['TDATTRIBUTES (debug bit)', BODY + 120, 'ERR_SIGNATURE_INVALID'],
    ['XFAM', BODY + 128, 'ERR_SIGNATURE_INVALID'],
    ['MRTD', BODY + 136, 'ERR_SIGNATURE_INVALID'],
    ['MRCONFIGID', BODY + 184, 'ERR_SIGNATURE_INVALID'],
    ['MROWNER', BODY + 232, 'ERR_SIGNATURE_INVALID'],
    ['MROWNERCONFIG', BODY + 280, 'ERR_SIGNATURE_INVALID'],
    ['RTMR0', BODY + 328, 'ERR_SIGNATURE_INVALID'],
    ['RTMR1', BODY + 376 + 47, 'ERR_SIGNATURE_INVALID'],
    ['RTMR2', BODY + 424, 'ERR_SIGNATURE_INVALID'],
    ['RTMR3', BODY + 472, 'ERR_SIGNATURE_INVALID'],
    ['REPORTDATA', BODY + 520 + 63, 'ERR_SIGNATURE_INVALID'],
    ['quote signature r', SIG_AT, 'ERR_SIGNATURE_INVALID'],
    ['quote signature s', SIG_AT + 63, 'ERR_SIGNATURE_INVALID'],
    ['attestation key', ATT_KEY_AT + 10, 'ERR_SIGNATURE_INVALID'],
    ['QE report CPUSVN', QE_REPORT_AT, 'ERR_SIGNATURE_INVALID'],
    ['QE report MRENCLAVE', QE_REPORT_AT + 64, 'ERR_SIGNATURE_INVALID'],
    ['QE report ISVSVN', QE_REPORT_AT + 258, 'ERR_SIGNATURE_INVALID'],
    ['QE report REPORTDATA', QE_REPORT_AT + 320, 'ERR_SIGNATURE_INVALID'],
    ['QE report reserved byte', QE_REPORT_AT + 100, 'ERR_RESERVED_NONZERO'],
    ['QE report signature', QE_SIG_AT + 5, 'ERR_SIGNATURE_INVALID'],
    ['QE auth data', QE_AUTH_AT + 31, 'ERR_SIGNATURE_INVALID'],
    ['header reserved', 9, 'ERR_RESERVED_NONZERO'],
  ];
  for (const [region, at, code] of regions) {
    it(`a bit flip in ${region}`, async () => {
      expect(await codeOf(run({ quote: flip(QUOTE, at) }))).toBe(code);
    });
  }

  it('a bit flip in the header version: 4 -> 5 misreads the body descriptor, 4 -> 6 is unknown', async () => {
    expect(await codeOf(run({ quote: flip(QUOTE, 0, 0x01) }))).toBe('ERR_MALFORMED');
    expect(await codeOf(run({ quote: flip(QUOTE, 0, 0x02) }))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('the bytes after the signature data are neither signed nor read', async () => {
    expect(await codeOf(run({ quote: flip(QUOTE, QUOTE.length - 5) }))).toBe(BASELINE);
  });

  /** Re-encodes one certificate of the quote's PEM chain with a DER bit flipped, keeping every length. */
  function withCertFlip(certIndex: number, derOffsetFromEnd: number): Uint8Array {
    const pem = new TextDecoder().decode(QUOTE.subarray(PEM_AT, PEM_AT + 3677));
    const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----\n([\s\S]*?)-----END CERTIFICATE-----/g)];
    const block = blocks[certIndex];
    const b64 = block[1].replace(/\n/g, '');
    const der = fromBase64(b64);
    der[der.length - derOffsetFromEnd] ^= 0x01;
    let bin = '';
    for (const b of der) bin += String.fromCharCode(b);
    const b64New = btoa(bin);
    let k = 0;
    const body = block[1].replace(/[^\n]/g, () => b64New[k++]);
    const out = QUOTE.slice();
    out.set(new TextEncoder().encode(body), PEM_AT + block.index! + '-----BEGIN CERTIFICATE-----\n'.length);
    return out;
  }

  it('a bit flip in the PCK leaf (its signature, its key, its SGX extension) breaks the chain', async () => {
    expect(await codeOf(run({ quote: withCertFlip(0, 10) }))).toBe('ERR_CHAIN_INVALID'); // signature value
    expect(await codeOf(run({ quote: withCertFlip(0, 700) }))).toBe('ERR_CHAIN_INVALID'); // inside the TBS
  });

  it('a bit flip in the PCK CA certificate breaks the chain', async () => {
    // x509/ reports a certificate that names a trusted root but fails its signature as ERR_UNTRUSTED_ROOT.
    expect(await codeOf(run({ quote: withCertFlip(1, 10) }))).toBe('ERR_UNTRUSTED_ROOT');
    // Inside its TBS (its key or names): the leaf's signature no longer verifies under it.
    expect(await codeOf(run({ quote: withCertFlip(1, 400) }))).toBe('ERR_CHAIN_INVALID');
  });

  it('a bit flip in the chain\'s copy of the root: only an exact copy of an injected root may ride along', async () => {
    expect(await codeOf(run({ quote: withCertFlip(2, 10) }))).toBe('ERR_CHAIN_INVALID');
  });

  it('a bit flip that breaks the PEM text itself', async () => {
    expect(await codeOf(run({ quote: flip(QUOTE, PEM_AT + 3, 0x40) }))).toBe('ERR_MALFORMED'); // "-----BEGIN" garbled
    expect(await codeOf(run({ quote: flip(QUOTE, PEM_AT + 100, 0x80) }))).toBe('ERR_MALFORMED'); // not UTF-8
  });
});

describe('tampering with the collateral is refused', () => {
  const tcbInfo = COLLATERAL.tcbInfoJson as string;
  const qeIdentity = COLLATERAL.qeIdentityJson as string;

  it('one byte changed inside the signed tcbInfo value', async () => {
    for (const [from, to] of [
      ['"tcbEvaluationDataNumber":15', '"tcbEvaluationDataNumber":16'],
      ['"pcesvn":11', '"pcesvn":10'],
      ['"tcbStatus":"OutOfDate"', '"tcbStatus":"OutOfDatf"'],
    ]) {
      expect(tcbInfo.includes(from)).toBe(true);
      expect(await codeOf(run({ collateral: { tcbInfoJson: tcbInfo.replace(from, to) } }))).toBe('ERR_SIGNATURE_INVALID');
    }
  });

  it('whitespace inside the signed value: same JSON, other bytes, refused (the raw bytes are what is signed)', async () => {
    const spaced = tcbInfo.replace('"version":3,', '"version":3, ');
    expect(JSON.parse(spaced)).toEqual(JSON.parse(tcbInfo));
    expect(await codeOf(run({ collateral: { tcbInfoJson: spaced } }))).toBe('ERR_SIGNATURE_INVALID');
  });

  it('whitespace outside the signed value changes nothing', async () => {
    const spaced = tcbInfo.replace('{"tcbInfo":', '{ "tcbInfo" :\n ').replace(',"signature"', ' ,\t"signature"');
    expect(await codeOf(run({ collateral: { tcbInfoJson: spaced } }))).toBe(BASELINE);
    expect(await codeOf(run({ collateral: { tcbInfoJson: new TextEncoder().encode(tcbInfo) } }))).toBe(BASELINE);
  });

  it('a changed signature, a missing one, a duplicated member', async () => {
    const sig = tcbInfo.match(/"signature":"([0-9a-f]+)"/)![1];
    const bad = tcbInfo.replace(sig, (sig[0] === '0' ? '1' : '0') + sig.slice(1));
    expect(await codeOf(run({ collateral: { tcbInfoJson: bad } }))).toBe('ERR_SIGNATURE_INVALID');
    expect(await codeOf(run({ collateral: { tcbInfoJson: tcbInfo.replace(/,"signature":"[0-9a-f]+"/, '') } }))).toBe('ERR_MALFORMED');
    const dup = tcbInfo.replace('{"tcbInfo":', '{"tcbInfo":{"id":"TDX"},"tcbInfo":');
    expect(await codeOf(run({ collateral: { tcbInfoJson: dup } }))).toBe('ERR_MALFORMED');
  });

  it('one byte changed inside the signed enclaveIdentity value', async () => {
    const edited = qeIdentity.replace('"isvprodid":2', '"isvprodid":3');
    expect(edited).not.toBe(qeIdentity);
    expect(await codeOf(run({ collateral: { qeIdentityJson: edited } }))).toBe('ERR_SIGNATURE_INVALID');
    const upper = qeIdentity.replace('"mrsigner":"DC9E', '"mrsigner":"dC9E');
    expect(await codeOf(run({ collateral: { qeIdentityJson: upper } }))).toBe('ERR_SIGNATURE_INVALID');
  });

  it('TCB info and QE identity swapped, or signed by a certificate other than TCB Signing', async () => {
    expect(await codeOf(run({ collateral: { tcbInfoJson: qeIdentity } }))).toBe('ERR_MALFORMED');
    expect(await codeOf(run({ collateral: { tcbInfoIssuerChainPem: COLLATERAL.pckCrlIssuerChainPem } }))).toBe('ERR_CHAIN_INVALID');
  });
});

describe('roots, CRLs and time', () => {
  it('swapped roots: another vendor\'s root is not Intel\'s', async () => {
    expect(await codeOf(run({ roots: [text('sev-snp/milan/ask_ark.pem')] }))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(run({ roots: [text('nvidia/nvidia_device_root.pem')] }))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('no roots, or a root that is not a certificate, is a usage error', async () => {
    expect(await codeOf(run({ roots: [] }))).toBe('ERR_USAGE');
    expect(await codeOf(run({ roots: [new Uint8Array([0x30, 0x00])] }))).toBe('ERR_USAGE');
  });

  it('a wrong root CRL: the PCK CRL in its place, or its signature broken', async () => {
    expect(await codeOf(run({ collateral: { rootCrlDer: COLLATERAL.pckCrlDer } }))).toBe('ERR_CHAIN_INVALID');
    const rootCrl = COLLATERAL.rootCrlDer;
    expect(await codeOf(run({ collateral: { rootCrlDer: flip(rootCrl, rootCrl.length - 3) } }))).toBe('ERR_CHAIN_INVALID');
  });

  it('a wrong PCK CRL: the root CRL in its place, its signature broken, or another CA\'s issuer chain', async () => {
    expect(await codeOf(run({ collateral: { pckCrlDer: COLLATERAL.rootCrlDer } }))).toBe('ERR_CHAIN_INVALID');
    const crl = COLLATERAL.pckCrlDer;
    expect(await codeOf(run({ collateral: { pckCrlDer: flip(crl, crl.length - 3) } }))).toBe('ERR_CHAIN_INVALID');
    expect(await codeOf(run({ collateral: { pckCrlIssuerChainPem: COLLATERAL.tcbInfoIssuerChainPem } }))).toBe('ERR_CHAIN_INVALID');
    expect(await codeOf(run({ collateral: { pckCrlDer: new Uint8Array([1, 2, 3]) } }))).toBe('ERR_MALFORMED');
  });

  it('expired collateral: past the PCK CRL\'s and QE identity\'s nextUpdate (2023-07-08)', async () => {
    expect(await codeOf(run({ at: new Date('2023-07-10T00:00:00Z') }))).toBe('ERR_EXPIRED');
  });

  it('each collateral window on its own', async () => {
    const late = trust(new Date('2023-07-19T00:00:00Z')); // TCB info nextUpdate 2023-07-18T08:42:58Z
    expect(await codeOf(verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, late))).toBe('ERR_EXPIRED');
    const early = trust(new Date('2023-06-10T00:00:00Z')); // TCB info issueDate 2023-06-18
    expect(await codeOf(verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, early))).toBe('ERR_NOT_YET_VALID');
    const qeLate = trust(new Date('2023-07-09T00:00:00Z')); // QE identity nextUpdate 2023-07-08
    expect(await codeOf(verifyQeIdentity(COLLATERAL.qeIdentityJson, COLLATERAL.qeIdentityIssuerChainPem, qeLate))).toBe('ERR_EXPIRED');
  });

  it('a time before the PCK certificate\'s notBefore (2022-09-20)', async () => {
    expect(await codeOf(run({ at: new Date('2022-09-01T00:00:00Z') }))).toBe('ERR_NOT_YET_VALID');
  });

  it('a time after the TCB Signing certificate expired (2025-05-21)', async () => {
    const at = new Date('2025-06-01T00:00:00Z');
    expect(await codeOf(verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, trust(at)))).toBe('ERR_EXPIRED');
  });

  it('no valid time is a usage error', async () => {
    expect(await codeOf(run({ at: new Date('not a date') }))).toBe('ERR_USAGE');
  });
});
