import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fromBase64, sha256, toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { importCertificatePublicKey, parseCertificate, parseCertificates } from '../x509/index.ts';
import {
  AMD_ARK_FINGERPRINTS_SHA256,
  AMD_ARK_GENOA_PEM,
  AMD_ARK_MILAN_PEM,
  type SnpReferencePolicy,
  decodeAmdEndorsementKeyExtensions,
  parseSnpReport,
  verifySnpEvidence,
  verifySnpReport,
  verifySnpReportSignature,
} from './index.ts';

const VECTORS = new URL('../../../test/vectors/sev-snp/', import.meta.url);
const file = (p: string) => new Uint8Array(readFileSync(new URL(p, VECTORS)));
const chainOf = (product: 'milan' | 'genoa') => {
  const [ask, ark] = parseCertificates(readFileSync(new URL(`${product}/ask_ark.pem`, VECTORS), 'utf8'));
  return { report: file(`${product}/report.bin`), vcek: file(`${product}/vcek.der`), ask, ark };
};
const milan = chainOf('milan');
const genoa = chainOf('genoa');
/** Inside both VCEKs' validity (Milan 2022-09-24..2029-09-24, Genoa 2026-01-11..2033-01-11). */
const AT = new Date('2026-06-01T00:00:00Z');

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

const evidence = (c: typeof milan, at = AT) => ({ report: c.report, vcek: c.vcek, ask: c.ask, trustedArks: [c.ark], at });

describe('verifySnpEvidence on real AMD evidence', () => {
  it('Milan: verifies, with the facts the vectors README states', async () => {
    const facts = await verifySnpEvidence(evidence(milan));
    expect(facts.version).toBe(2);
    expect(facts.productLine).toBe('Milan');
    expect(toHex(facts.reportData)).toBe(`0102030405${'00'.repeat(59)}`);
    expect(facts.reportedTcb).toMatchObject({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(facts.policy.raw).toBe(0xb0000n);
    expect(facts.policy.debug).toBe(true);
    expect(facts.signingKey).toBe('vcek');
    expect(facts.endorsementKey).toMatchObject({ productName: 'Milan-B0', serialNumberHex: '00' });
    expect(facts.root.fingerprintSha256).toBe(AMD_ARK_FINGERPRINTS_SHA256.Milan);
  });

  it('Milan: a production policy refuses it (DEBUG is set); a debug-tolerant one accepts', async () => {
    const measurement = toHex(parseSnpReport(milan.report).measurement);
    const production: SnpReferencePolicy = { measurements: [measurement] };
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), policy: production }))).toBe('ERR_POLICY_VIOLATION');
    await expect(
      verifySnpEvidence({ ...evidence(milan), policy: { ...production, allowDebug: true, reportData: `0102030405${'00'.repeat(59)}` } }),
    ).resolves.toBeDefined();
  });

  it('Genoa: measurement 09ef32ac…, report_data[0:32] = SHA-256 of the enclave certificate SPKI, VCEK serial 0', async () => {
    const facts = await verifySnpEvidence(evidence(genoa));
    expect(facts.version).toBe(3);
    expect(facts.productLine).toBe('Genoa');
    expect(toHex(facts.measurement).startsWith('09ef32ac')).toBe(true);
    expect(facts.endorsementKey.serialNumberHex).toBe('00');
    expect(facts.reportedTcb).toMatchObject({ bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    expect(facts.policy.debug).toBe(false);
    expect(facts.root.fingerprintSha256).toBe(AMD_ARK_FINGERPRINTS_SHA256.Genoa);

    const bundle = JSON.parse(readFileSync(new URL('genoa/tinfoil-attestation-bundle.json', VECTORS), 'utf8'));
    const enclaveCert = parseCertificate(bundle.enclaveCert);
    expect(toHex(facts.reportData.subarray(0, 32))).toBe(toHex(await sha256(enclaveCert.subjectPublicKeyInfo)));
    // The vector files are the bundle's own bytes.
    expect(new Uint8Array(gunzipSync(fromBase64(bundle.enclaveAttestationReport.body)))).toEqual(genoa.report);
    expect(fromBase64(bundle.vcek)).toEqual(genoa.vcek);

    const policy: SnpReferencePolicy = { measurements: [facts.measurement], vmpl: 0, minimumTcb: { bootloader: 10, snp: 23, microcode: 84 } };
    await expect(verifySnpEvidence({ ...evidence(genoa), policy })).resolves.toBeDefined();
  });

  it('accepts several pinned ARKs, including the shipped AMD root PEMs', async () => {
    const trustedArks = [AMD_ARK_MILAN_PEM, AMD_ARK_GENOA_PEM];
    await expect(verifySnpEvidence({ ...evidence(milan), trustedArks })).resolves.toBeDefined();
    await expect(verifySnpEvidence({ ...evidence(genoa), trustedArks })).resolves.toBeDefined();
    expect(parseCertificate(AMD_ARK_MILAN_PEM).der).toEqual(milan.ark.der);
    expect(parseCertificate(AMD_ARK_GENOA_PEM).der).toEqual(genoa.ark.der);
  });

  it('decodes the VCEK extensions (TCB SPLs, product name, 64-byte hwID = CHIP_ID)', () => {
    for (const c of [milan, genoa]) {
      const ext = decodeAmdEndorsementKeyExtensions(parseCertificate(c.vcek));
      const report = parseSnpReport(c.report);
      expect(ext.hwId).toEqual(report.chipId);
      expect(ext.spl).toMatchObject({ bootloader: report.reportedTcb.bootloader, snp: report.reportedTcb.snp, microcode: report.reportedTcb.microcode });
      expect(ext.cspId).toBeUndefined();
    }
  });
});

describe('tampering is refused with the right code', () => {
  const flip = (report: Uint8Array, offset: number, bit = 0) => {
    const copy = report.slice();
    copy[offset] ^= 1 << bit;
    return copy;
  };
  const cases: [string, 'milan' | 'genoa', number, number, string][] = [
    ['version 2 -> 3', 'milan', 0x000, 0, 'ERR_SIGNATURE_INVALID'],
    ['version 2 -> 6', 'milan', 0x000, 2, 'ERR_UNSUPPORTED_VERSION'],
    ['guest_svn', 'genoa', 0x004, 0, 'ERR_SIGNATURE_INVALID'],
    ['policy DEBUG bit cleared', 'milan', 0x00a, 3, 'ERR_SIGNATURE_INVALID'],
    ['policy reserved-one bit 17', 'genoa', 0x00a, 1, 'ERR_MALFORMED'],
    ['policy reserved bit 26', 'genoa', 0x00b, 2, 'ERR_RESERVED_NONZERO'],
    ['vmpl', 'genoa', 0x030, 0, 'ERR_SIGNATURE_INVALID'],
    ['current_tcb', 'genoa', 0x038, 0, 'ERR_SIGNATURE_INVALID'],
    ['signer info reserved', 'genoa', 0x048, 6, 'ERR_RESERVED_NONZERO'],
    ['report_data', 'milan', 0x050, 0, 'ERR_SIGNATURE_INVALID'],
    ['measurement', 'genoa', 0x090, 7, 'ERR_SIGNATURE_INVALID'],
    ['host_data', 'genoa', 0x0c0, 0, 'ERR_SIGNATURE_INVALID'],
    ['reported_tcb', 'milan', 0x186, 0, 'ERR_SIGNATURE_INVALID'],
    ['cpuid stepping', 'genoa', 0x18a, 1, 'ERR_SIGNATURE_INVALID'],
    ['cpuid model names another product', 'genoa', 0x189, 4, 'ERR_VALUE_MISMATCH'],
    ['reserved after cpuid', 'genoa', 0x190, 0, 'ERR_RESERVED_NONZERO'],
    ['chip_id', 'milan', 0x1a0, 0, 'ERR_SIGNATURE_INVALID'],
    ['committed_tcb', 'genoa', 0x1e0, 0, 'ERR_SIGNATURE_INVALID'],
    ['reserved byte 0x1eb', 'genoa', 0x1eb, 0, 'ERR_RESERVED_NONZERO'],
    ['launch_tcb', 'genoa', 0x1f0, 0, 'ERR_SIGNATURE_INVALID'],
    ['mitigation vector (reserved before v5)', 'genoa', 0x1f8, 0, 'ERR_RESERVED_NONZERO'],
    ['reserved 0x208..0x2a0', 'milan', 0x29f, 0, 'ERR_RESERVED_NONZERO'],
    ['signature r', 'milan', 0x2a0, 0, 'ERR_SIGNATURE_INVALID'],
    ['signature r beyond 48 bytes', 'genoa', 0x2a0 + 50, 0, 'ERR_SIGNATURE_INVALID'],
    ['signature s', 'genoa', 0x2e8 + 47, 7, 'ERR_SIGNATURE_INVALID'],
    ['signature field reserved', 'milan', 0x400, 0, 'ERR_RESERVED_NONZERO'],
  ];
  for (const [name, product, offset, bit, code] of cases) {
    it(`${product} ${name} (0x${offset.toString(16)} bit ${bit}) -> ${code}`, async () => {
      const c = product === 'milan' ? milan : genoa;
      expect(await codeOf(verifySnpEvidence({ ...evidence(c), report: flip(c.report, offset, bit) }))).toBe(code);
    });
  }

  it('every single-bit flip anywhere in either report is refused (parse or signature)', async () => {
    for (const c of [milan, genoa]) {
      const key = await importCertificatePublicKey(parseCertificate(c.vcek), { name: 'ECDSA', namedCurve: 'P-384' });
      const allowed = new Set(['ERR_SIGNATURE_INVALID', 'ERR_RESERVED_NONZERO', 'ERR_UNSUPPORTED_VERSION', 'ERR_MALFORMED']);
      for (let offset = 0; offset < c.report.length; offset++) {
        const code = await codeOf((async () => verifySnpReportSignature(parseSnpReport(flip(c.report, offset, offset % 8)), key))());
        expect(allowed.has(code ?? 'accepted'), `offset 0x${offset.toString(16)}: ${code ?? 'accepted'}`).toBe(true);
      }
    }
  });
});

describe('chains, roots and dates', () => {
  it('refuses swapped chains and roots', async () => {
    // Milan VCEK with Genoa's ASK and ARK: the VCEK does not link to that ASK.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), ask: genoa.ask, trustedArks: [genoa.ark] }))).toBe('ERR_CHAIN_INVALID');
    // A genuine Milan chain, but only Genoa's ARK is trusted.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), trustedArks: [genoa.ark] }))).toBe('ERR_UNTRUSTED_ROOT');
    // KDS's cert_chain PEM (ASK then ARK) may be passed as the ASK; its ARK must still be a pinned one.
    const certChainPem = readFileSync(new URL('milan/ask_ark.pem', VECTORS), 'utf8');
    await expect(verifySnpEvidence({ ...evidence(milan), ask: certChainPem })).resolves.toBeDefined();
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), ask: certChainPem, trustedArks: [genoa.ark] }))).toBe('ERR_UNTRUSTED_ROOT');
    // The ASK missing.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), ask: undefined }))).toBe('ERR_UNTRUSTED_ROOT');
    // A valid Genoa chain presented with the Milan report: its signature is not the Genoa VCEK's.
    expect(await codeOf(verifySnpEvidence({ ...evidence(genoa), report: milan.report }))).toBe('ERR_SIGNATURE_INVALID');
    // The Genoa report with Milan's chain: the report's CPUID says Genoa, the VCEK says Milan.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), report: genoa.report }))).toBe('ERR_VALUE_MISMATCH');
    // The ARK passed as the VCEK.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), vcek: milan.ark.der }))).toBe('ERR_MALFORMED');
    // No VCEK at all.
    expect(await codeOf(verifySnpEvidence({ ...evidence(milan), vcek: undefined }))).toBe('ERR_USAGE');
  });

  it('checks dates either side of each VCEK validity window', async () => {
    expect(await codeOf(verifySnpEvidence(evidence(milan, new Date('2022-09-23T00:00:00Z'))))).toBe('ERR_NOT_YET_VALID');
    expect(await codeOf(verifySnpEvidence(evidence(milan, new Date('2029-09-25T00:00:00Z'))))).toBe('ERR_EXPIRED');
    expect(await codeOf(verifySnpEvidence(evidence(genoa, new Date('2026-01-10T00:00:00Z'))))).toBe('ERR_NOT_YET_VALID');
    expect(await codeOf(verifySnpEvidence(evidence(genoa, new Date('2033-01-12T00:00:00Z'))))).toBe('ERR_EXPIRED');
    await expect(verifySnpEvidence(evidence(genoa, new Date('2026-01-12T00:00:00Z')))).resolves.toBeDefined();
  });

  it('refuses reports that claim to be unsigned or VLEK-signed without a VLEK', async () => {
    const none = milan.report.slice();
    none[0x48] = 7 << 2;
    expect(await codeOf(verifySnpReport({ ...evidence(milan), report: none }))).toBe('ERR_SIGNATURE_INVALID');
    const vlek = milan.report.slice();
    vlek[0x48] = 1 << 2;
    expect(await codeOf(verifySnpReport({ ...evidence(milan), report: vlek }))).toBe('ERR_USAGE');
    // A VCEK passed as the VLEK: it has hwID and no cspId, and the signature is over other bytes anyway.
    expect(await codeOf(verifySnpReport({ report: vlek, vlek: milan.vcek, asvk: milan.ask, trustedArks: [milan.ark], at: AT }))).toBe('ERR_SIGNATURE_INVALID');
  });
});
