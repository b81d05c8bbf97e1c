import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { checkSignatureAlgorithm, parseCertificate, validateCertificatePath } from '../../shared/attestation/x509/index.ts';
import {
  AMD_ARK_GENOA_PEM,
  AMD_ARK_MILAN_PEM,
  decodeAmdEndorsementKeyExtensions,
  parseSnpReport,
  verifySnpEvidence,
} from '../../shared/attestation/sev-snp/index.ts';
import { SIM_ARK_PEM_FILE, SIM_STATE_FILE, SIM_VLEK_CSP_ID, SimulatedSnpTee, openSimulatedSnpTee, simulatedReportOfVersion } from './index.ts';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

const measurement = new Uint8Array(48).fill(0xab);
const reportData = randomBytes(64);
let dir: string;
let tee: SimulatedSnpTee;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-tee-sim-'));
  tee = await openSimulatedSnpTee({ dir: join(dir, 'machine') });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const verifyWith = (t: SimulatedSnpTee, report: Uint8Array, trustedArks: (string | Uint8Array)[] = [t.arkPem], at = new Date()) =>
  verifySnpEvidence({ report, vcek: t.vcekDer, ask: t.askDer, trustedArks, at });

describe('the simulated chain', () => {
  it('persists in its directory with private files (0600) and reuses them on the next start', async () => {
    const machine = join(dir, 'machine');
    expect((await stat(machine)).mode & 0o777).toBe(0o700);
    expect((await stat(join(machine, SIM_STATE_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(join(machine, SIM_ARK_PEM_FILE))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(machine, SIM_ARK_PEM_FILE), 'utf8')).toBe(tee.arkPem);
    const started = Date.now();
    const again = await openSimulatedSnpTee({ dir: machine });
    expect(Date.now() - started).toBeLessThan(2000); // no RSA-4096 key generation this time
    expect(again.arkDer).toEqual(tee.arkDer);
    expect(again.askDer).toEqual(tee.askDer);
    expect(again.vcekDer).toEqual(tee.vcekDer);
    expect(again.chipId).toEqual(tee.chipId);
    // The ARK's private key is not kept.
    expect(await readFile(join(machine, SIM_STATE_FILE), 'utf8')).not.toMatch(/arkPkcs8/);
  });

  it('is shaped like AMD’s: RSA-4096 PSS ARK and ASK (pathLen 0), P-384 VCEK with serial 0 and the same AMD extensions', async () => {
    const ark = parseCertificate(tee.arkDer);
    const ask = parseCertificate(tee.askDer);
    const vcek = parseCertificate(tee.vcekDer);
    expect(ark.selfIssued).toBe(true);
    expect(ark.basicConstraints).toEqual({ ca: true });
    expect(ask.basicConstraints).toEqual({ ca: true, pathLength: 0 });
    expect(ark.publicKeyKind).toBe('rsa');
    expect((ark.pkijs.subjectPublicKeyInfo.parsedKey as { modulus: { valueBlock: { valueHexView: Uint8Array } } }).modulus.valueBlock.valueHexView.length).toBeGreaterThanOrEqual(512);
    for (const c of [ark, ask, vcek]) {
      expect(c.pkijs.signatureAlgorithm.algorithmId).toBe('1.2.840.113549.1.1.10');
      expect(() => checkSignatureAlgorithm(c.pkijs.signatureAlgorithm, c.pkijs.signature, c.subject)).not.toThrow(); // SHA-384, MGF1 SHA-384, salt 48
    }
    expect(vcek.serialNumberHex).toBe('00');
    expect(vcek.publicKeyKind).toBe('ec-p384');
    expect(vcek.basicConstraints).toBeUndefined();
    const real = parseCertificate(new Uint8Array(readFileSync(new URL('../../test/vectors/sev-snp/genoa/vcek.der', import.meta.url))));
    expect(vcek.extensions.map((e) => e.oid)).toEqual(real.extensions.map((e) => e.oid));
    const ext = decodeAmdEndorsementKeyExtensions(vcek);
    expect(ext.productName).toBe('Genoa');
    expect(ext.hwId).toEqual(tee.chipId);
    expect(ext.spl).toMatchObject(tee.tcb);
    await expect(validateCertificatePath({ leaf: vcek, intermediates: [ask], trustedRoots: [ark], at: new Date(), maxIntermediates: 1 })).resolves.toBeDefined();
  });

  it('gives two processes that start together on a fresh directory one chain', async () => {
    const fresh = join(dir, 'race');
    const [a, b] = await Promise.all([openSimulatedSnpTee({ dir: fresh }), openSimulatedSnpTee({ dir: fresh })]);
    expect(a.arkDer).toEqual(b.arkDer);
    expect(a.chipId).toEqual(b.chipId);
    await expect(verifyWith(a, await b.report({ reportData, measurement }))).resolves.toBeDefined();
  });

  it('refuses a corrupt state file instead of replacing the pinned root', async () => {
    const broken = join(dir, 'broken');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, SIM_STATE_FILE), '{"format":"something else"}');
    expect(await codeOf(openSimulatedSnpTee({ dir: broken }))).toBe('ERR_MALFORMED');
    await writeFile(join(broken, SIM_STATE_FILE), 'not json');
    expect(await codeOf(openSimulatedSnpTee({ dir: broken }))).toBe('ERR_MALFORMED');
  });
});

describe('simulated reports through the real verifier', () => {
  it('verify with the local ARK pinned, with the facts asked for', async () => {
    const hostData = randomBytes(32);
    const report = await tee.report({ reportData, measurement, hostData });
    expect(report.length).toBe(1184);
    const facts = await verifyWith(tee, report);
    expect(facts.version).toBe(3);
    expect(facts.productLine).toBe('Genoa');
    expect(facts.measurement).toEqual(measurement);
    expect(facts.reportData).toEqual(reportData);
    expect(facts.hostData).toEqual(hostData);
    expect(facts.chipId).toEqual(tee.chipId);
    expect(facts.reportedTcb).toMatchObject(tee.tcb);
    expect(facts.policy).toMatchObject({ raw: 0x30000n, smt: true, debug: false, migrationAgent: false });
    expect(facts.endorsementKey.serialNumberHex).toBe('00');
    expect(facts.root.certificate.der).toEqual(tee.arkDer);
    const policy = { measurements: [toHex(measurement)], reportData, hostData, vmpl: 0, minimumTcb: tee.tcb };
    await expect(verifySnpEvidence({ report, vcek: tee.vcekDer, ask: tee.askDer, trustedArks: [tee.arkDer], at: new Date(), policy })).resolves.toBeDefined();
  });

  it('are refused when only AMD’s real ARKs are trusted', async () => {
    const report = await tee.report({ reportData, measurement });
    expect(await codeOf(verifyWith(tee, report, [AMD_ARK_MILAN_PEM, AMD_ARK_GENOA_PEM]))).toBe('ERR_UNTRUSTED_ROOT');
    // Nor does another simulated machine's root vouch for this one.
    const other = await openSimulatedSnpTee({ dir: join(dir, 'race') });
    expect(await codeOf(verifyWith(tee, report, [other.arkPem]))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('of versions 2, 4 and 5 parse and verify too', async () => {
    for (const version of [2, 3, 4, 5] as const) {
      const report = await simulatedReportOfVersion(tee, version, { reportData, measurement });
      const parsed = parseSnpReport(report, { productLine: 'Genoa' });
      expect(parsed.version).toBe(version);
      expect(parsed.cpuid === undefined).toBe(version === 2);
      expect(parsed.launchMitVector === undefined).toBe(version < 5);
      const facts = await verifyWith(tee, report);
      expect(facts.version).toBe(version);
      expect(facts.reportedTcb.raw).toBe(parsed.reportedTcb.raw);
    }
  });

  it('a validly signed report whose TCB the VCEK does not certify is refused', async () => {
    const report = await tee.report({ reportData, measurement, overrides: { reportedTcb: { ...tee.tcb, snp: tee.tcb.snp + 1 } } });
    expect(await codeOf(verifyWith(tee, report))).toBe('ERR_VALUE_MISMATCH');
  });

  it('a validly signed report with another chip’s CHIP_ID is refused; a masked (zero) CHIP_ID is not matched', async () => {
    const wrongChip = await tee.report({ reportData, measurement, overrides: { chipId: randomBytes(64) } });
    expect(await codeOf(verifyWith(tee, wrongChip))).toBe('ERR_VALUE_MISMATCH');
    const masked = await tee.report({ reportData, measurement, overrides: { chipId: new Uint8Array(64) } });
    expect((await verifyWith(tee, masked)).chipIdMasked).toBe(true);
  });

  it('the DEBUG policy bit verifies but a production policy refuses it', async () => {
    const report = await tee.report({ reportData, measurement, policy: { smt: true, debug: true } });
    const facts = await verifyWith(tee, report);
    expect(facts.policy.debug).toBe(true);
    const policy = { measurements: [measurement] };
    expect(await codeOf(verifySnpEvidence({ report, vcek: tee.vcekDer, ask: tee.askDer, trustedArks: [tee.arkPem], at: new Date(), policy }))).toBe(
      'ERR_POLICY_VIOLATION',
    );
  });

  it('dates outside the simulated VCEK’s validity are refused', async () => {
    const report = await tee.report({ reportData, measurement });
    const vcek = parseCertificate(tee.vcekDer);
    expect(await codeOf(verifyWith(tee, report, [tee.arkPem], new Date(vcek.notBefore.getTime() - 1000)))).toBe('ERR_NOT_YET_VALID');
    expect(await codeOf(verifyWith(tee, report, [tee.arkPem], new Date(vcek.notAfter.getTime() + 1000)))).toBe('ERR_EXPIRED');
  });

  it('a TCB update issues a new VCEK; the old VCEK no longer matches the new reports', async () => {
    const machine = join(dir, 'machine');
    const updated = await openSimulatedSnpTee({ dir: machine, tcb: { ...tee.tcb, microcode: tee.tcb.microcode + 1 } });
    expect(updated.arkDer).toEqual(tee.arkDer);
    expect(updated.vcekDer).not.toEqual(tee.vcekDer);
    const report = await updated.report({ reportData, measurement });
    await expect(verifyWith(updated, report)).resolves.toBeDefined();
    const stale = verifySnpEvidence({ report, vcek: tee.vcekDer, ask: tee.askDer, trustedArks: [tee.arkPem], at: new Date() });
    expect(await codeOf(stale)).toBe('ERR_SIGNATURE_INVALID');
    // Persisted: the next start finds the same VCEK for that TCB.
    expect((await openSimulatedSnpTee({ dir: machine, tcb: updated.tcb })).vcekDer).toEqual(updated.vcekDer);
  });

  it('simulates Turin: FMC SPL, the Turin TCB layout and an 8-byte hwID', async () => {
    const turin = await openSimulatedSnpTee({ dir: join(dir, 'machine'), productLine: 'Turin' });
    const ext = decodeAmdEndorsementKeyExtensions(parseCertificate(turin.vcekDer));
    expect(ext.productLine).toBe('Turin');
    expect(ext.hwId).toEqual(turin.chipId.subarray(0, 8));
    expect(ext.spl.fmc).toBe(turin.tcb.fmc);
    for (const version of [2, 3, 5] as const) {
      const facts = await verifyWith(turin, await simulatedReportOfVersion(turin, version, { reportData, measurement }));
      expect(facts.productLine).toBe('Turin');
      expect(facts.reportedTcb).toMatchObject({ ...turin.tcb, layout: 'turin' });
    }
    const wrongFmc = await turin.report({ reportData, measurement, overrides: { reportedTcb: { ...turin.tcb, fmc: (turin.tcb.fmc ?? 0) + 1 } } });
    expect(await codeOf(verifyWith(turin, wrongFmc))).toBe('ERR_VALUE_MISMATCH');
    // A Turin report checked against the Genoa VCEK: the CPUIDs disagree.
    expect(await codeOf(verifyWith(tee, await turin.report({ reportData, measurement })))).toBe('ERR_VALUE_MISMATCH');
  });

  it('signs with a VLEK (VLEK -> ASVK -> ARK) when asked, and the verifier follows SIGNING_KEY', async () => {
    const vlekTee = await openSimulatedSnpTee({ dir: join(dir, 'machine'), signingKey: 'vlek' });
    const ext = decodeAmdEndorsementKeyExtensions(parseCertificate(vlekTee.vcekDer));
    expect(ext.cspId).toBe(SIM_VLEK_CSP_ID);
    expect(ext.hwId).toBeUndefined();
    const report = await vlekTee.report({ reportData, measurement });
    expect(parseSnpReport(report).signerInfo.signingKey).toBe('vlek');
    const facts = await verifySnpEvidence({ report, vlek: vlekTee.vcekDer, asvk: vlekTee.askDer, trustedArks: [vlekTee.arkPem], at: new Date() });
    expect(facts.signingKey).toBe('vlek');
    expect(facts.endorsementKey.cspId).toBe(SIM_VLEK_CSP_ID);
    // A VLEK-signed report with only a VCEK given, or the VLEK passed as a VCEK, is refused.
    expect(await codeOf(verifyWith(tee, report))).toBe('ERR_USAGE');
    const vcekSigned = await tee.report({ reportData, measurement });
    expect(await codeOf(verifySnpEvidence({ report: vcekSigned, vcek: vlekTee.vcekDer, ask: tee.askDer, trustedArks: [tee.arkPem], at: new Date() }))).toBe(
      'ERR_SIGNATURE_INVALID',
    );
    const policy = { measurements: [measurement], allowedSigningKeys: ['vcek'] as const };
    expect(
      await codeOf(verifySnpEvidence({ report, vlek: vlekTee.vcekDer, asvk: vlekTee.askDer, trustedArks: [vlekTee.arkPem], at: new Date(), policy })),
    ).toBe('ERR_POLICY_VIOLATION');
  });

  it('refuses request fields of the wrong size', async () => {
    expect(await codeOf(tee.report({ reportData: new Uint8Array(32), measurement }))).toBe('ERR_USAGE');
    expect(await codeOf(tee.report({ reportData, measurement: new Uint8Array(32) }))).toBe('ERR_USAGE');
    expect(await codeOf(tee.report({ reportData, measurement, version: 6 as never }))).toBe('ERR_USAGE');
  });
});
