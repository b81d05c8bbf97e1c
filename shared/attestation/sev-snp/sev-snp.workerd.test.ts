/// <reference types="vite/client" />
/**
 * The same SEV-SNP verifier and X.509 layer inside workerd (run with a vitest-pool-workers config
 * that includes this file): both real AMD vectors verify, and a tampered report is refused.
 */
import { expect, it } from 'vitest';
import { fromBase64, toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { parseCertificates } from '../x509/index.ts';
import milanReportUrl from '../../../test/vectors/sev-snp/milan/report.bin?inline';
import milanVcekUrl from '../../../test/vectors/sev-snp/milan/vcek.der?inline';
import milanAskArk from '../../../test/vectors/sev-snp/milan/ask_ark.pem?raw';
import genoaReportUrl from '../../../test/vectors/sev-snp/genoa/report.bin?inline';
import genoaVcekUrl from '../../../test/vectors/sev-snp/genoa/vcek.der?inline';
import genoaAskArk from '../../../test/vectors/sev-snp/genoa/ask_ark.pem?raw';
import { verifySnpEvidence } from './index.ts';

const dataUrl = (u: string) => fromBase64(u.slice(u.indexOf(',') + 1));
const AT = new Date('2026-06-01T00:00:00Z');

it('verifies real SEV-SNP evidence in workerd', async () => {
  expect(navigator.userAgent).toBe('Cloudflare-Workers');
  for (const [reportUrl, vcekUrl, askArk, tcb] of [
    [milanReportUrl, milanVcekUrl, milanAskArk, { bootloader: 2, tee: 0, snp: 5, microcode: 68 }],
    [genoaReportUrl, genoaVcekUrl, genoaAskArk, { bootloader: 10, tee: 0, snp: 23, microcode: 84 }],
  ] as const) {
    const [ask, ark] = parseCertificates(askArk);
    const report = dataUrl(reportUrl);
    const facts = await verifySnpEvidence({ report, vcek: dataUrl(vcekUrl), ask, trustedArks: [ark], at: AT });
    expect(facts.reportedTcb).toMatchObject(tcb);
    expect(facts.endorsementKey.serialNumberHex).toBe('00');
    const tampered = report.slice();
    tampered[0x90] ^= 1;
    const error = await verifySnpEvidence({ report: tampered, vcek: dataUrl(vcekUrl), ask, trustedArks: [ark], at: AT }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObscuraError);
    expect((error as ObscuraError).code).toBe('ERR_SIGNATURE_INVALID');
  }
  const [, genoaArk] = parseCertificates(genoaAskArk);
  const [milanAsk] = parseCertificates(milanAskArk);
  const swapped = await verifySnpEvidence({ report: dataUrl(milanReportUrl), vcek: dataUrl(milanVcekUrl), ask: milanAsk, trustedArks: [genoaArk], at: AT }).catch((e: unknown) => e);
  expect((swapped as ObscuraError).code).toBe('ERR_UNTRUSTED_ROOT');
  expect(toHex(dataUrl(genoaReportUrl).subarray(0x90, 0x94))).toBe('09ef32ac');
});
