/**
 * The attestation verifiers inside workerd, on the real vectors (embedded by build-vectors.mjs and
 * served as `virtual:obscura-vectors`): each verifies with its stated facts, and a tampered copy of
 * each is refused with the code Node gives. Run by vitest.workerd.config.ts.
 */
import { VECTORS } from 'virtual:obscura-vectors';
import { describe, expect, it } from 'vitest';
import { fromBase64, fromUtf8, sha256, toHex } from '../../shared/bytes.ts';
import { type ErrorCode, ObscuraError } from '../../shared/errors.ts';
import { parseCertificate, parseCertificates, parseCrl } from '../../shared/attestation/x509/index.ts';
import { validateSnpReport, verifySnpEvidence } from '../../shared/attestation/sev-snp/index.ts';
import {
  loadTrustedRoots,
  matchQeIdentity,
  parseQuote,
  type TdxCollateral,
  verifyPckChain,
  verifyQeIdentity,
  verifyQuote,
  verifyQuoteSignatures,
  verifyTcbInfo,
} from '../../shared/attestation/tdx/index.ts';
import { verifyNvidiaGpuEvidence } from '../../shared/attestation/nvidia/index.ts';

function bytes(path: string): Uint8Array {
  const base64 = VECTORS[path];
  if (base64 === undefined) throw new Error(`no vector ${path}`);
  return fromBase64(base64);
}
const text = (path: string) => fromUtf8(bytes(path));

function flipped(source: Uint8Array, offset: number, mask = 0x01): Uint8Array {
  const copy = source.slice();
  copy[offset] ^= mask;
  return copy;
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<ErrorCode | 'ok'> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

/** A verification time inside both AMD VCEKs' windows (Genoa's starts 2026-01-11) and NVIDIA's. */
const NOW = new Date('2026-06-01T00:00:00Z');

it('runs inside workerd', () => {
  expect(navigator.userAgent).toBe('Cloudflare-Workers');
  expect('WebSocketPair' in globalThis).toBe(true);
});

describe('SEV-SNP in workerd', () => {
  function snp(product: 'milan' | 'genoa') {
    const [ask, ark] = parseCertificates(text(`sev-snp/${product}/ask_ark.pem`));
    return { report: bytes(`sev-snp/${product}/report.bin`), vcek: bytes(`sev-snp/${product}/vcek.der`), ask, trustedArks: [ark], at: NOW };
  }

  it('Milan verifies with its facts; DEBUG is reported, and a production policy refuses it', async () => {
    const facts = await verifySnpEvidence(snp('milan'));
    expect(facts.version).toBe(2);
    expect(facts.productLine).toBe('Milan');
    expect(toHex(facts.reportData)).toBe(`0102030405${'00'.repeat(59)}`);
    expect(facts.reportedTcb).toMatchObject({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(facts.policy.debug).toBe(true);
    const measurements = [toHex(facts.measurement)];
    expect(await codeOf(() => validateSnpReport(facts.report, { measurements, allowDebug: false }))).toBe('ERR_POLICY_VIOLATION');
    expect(await codeOf(() => validateSnpReport(facts.report, { measurements, allowDebug: true }))).toBe('ok');
  });

  it('Genoa verifies: measurement 09ef32ac…, VCEK serial 0, report_data binds the enclave TLS key', async () => {
    const facts = await verifySnpEvidence(snp('genoa'));
    expect(facts.version).toBe(3);
    expect(toHex(facts.measurement).startsWith('09ef32ac')).toBe(true);
    expect(facts.endorsementKey.serialNumberHex).toBe('00');
    const bundle = JSON.parse(text('sev-snp/genoa/tinfoil-attestation-bundle.json')) as { enclaveCert: string };
    const spkiHash = await sha256(parseCertificate(bundle.enclaveCert).subjectPublicKeyInfo);
    expect(toHex(facts.reportData.subarray(0, 32))).toBe(toHex(spkiHash));
  });

  it('refuses tampered reports, swapped roots and a time before the VCEK', async () => {
    for (const product of ['milan', 'genoa'] as const) {
      const base = snp(product);
      expect(await codeOf(verifySnpEvidence({ ...base, report: flipped(base.report, 0x90) }))).toBe('ERR_SIGNATURE_INVALID');
      expect(await codeOf(verifySnpEvidence({ ...base, report: flipped(base.report, 0x2a0) }))).toBe('ERR_SIGNATURE_INVALID');
      expect(await codeOf(verifySnpEvidence({ ...base, report: flipped(base.report, 0x00, 0x08) }))).toBe('ERR_UNSUPPORTED_VERSION');
      expect(await codeOf(verifySnpEvidence({ ...base, report: base.report.subarray(0, 1000) }))).toBe('ERR_MALFORMED');
      expect(await codeOf(verifySnpEvidence({ ...base, at: new Date('2000-01-01T00:00:00Z') }))).toBe('ERR_NOT_YET_VALID');
    }
    const milan = snp('milan');
    const swapped = await codeOf(verifySnpEvidence({ ...milan, trustedArks: snp('genoa').trustedArks }));
    expect(['ERR_UNTRUSTED_ROOT', 'ERR_CHAIN_INVALID']).toContain(swapped);
  });
});

describe('TDX in workerd (spr-e4 at 2023-07-01)', () => {
  const AT = new Date('2023-07-01T00:00:00Z');
  const DIR = 'tdx/spr-e4';
  const QUOTE = bytes(`${DIR}/quote.dat`);
  const ROOT = text('tdx/intel_sgx_root_ca.pem');
  const COLLATERAL: TdxCollateral = {
    tcbInfoJson: text(`${DIR}/tcb_info.json`),
    tcbInfoIssuerChainPem: text(`${DIR}/tcb_info_issuer_chain.pem`),
    qeIdentityJson: text(`${DIR}/qe_identity.json`),
    qeIdentityIssuerChainPem: text(`${DIR}/qe_identity_issuer_chain.pem`),
    pckCrlDer: bytes(`${DIR}/pck_crl.der`),
    pckCrlIssuerChainPem: text(`${DIR}/pck_crl_issuer_chain.pem`),
    rootCrlDer: bytes(`${DIR}/root_crl.der`),
  };
  const trust = (at = AT) => ({ roots: loadTrustedRoots([ROOT]), rootCrl: parseCrl(COLLATERAL.rootCrlDer), at });

  it('every signature, chain, CRL and collateral window verifies, and the facts are the quote\'s', async () => {
    const quote = parseQuote(QUOTE);
    expect(quote.header.version).toBe(4);
    expect(toHex(quote.body.mrTd).startsWith('6363b804')).toBe(true);
    const pck = await verifyPckChain(quote.pckCertChainDer, parseCrl(COLLATERAL.pckCrlDer), COLLATERAL.pckCrlIssuerChainPem, trust());
    expect(toHex(pck.extensions.fmspc)).toBe('50806f000000');
    await verifyQuoteSignatures(quote, pck.key); // QE report by the PCK, key binding, quote by the attestation key
    const info = await verifyTcbInfo(COLLATERAL.tcbInfoJson, COLLATERAL.tcbInfoIssuerChainPem, trust());
    expect(info.tcbEvaluationDataNumber).toBe(15);
    const qe = await verifyQeIdentity(COLLATERAL.qeIdentityJson, COLLATERAL.qeIdentityIssuerChainPem, trust());
    expect(matchQeIdentity(quote.qeReport, qe).tcbStatus).toBe('UpToDate');
  });

  it('the whole verifyQuote: Intel TCB matching finds no level for this platform, as in Node', async () => {
    // PCK SGX TCB 3.3.2.2.2.1.0.2 is below every level of this TCB info (Intel: "TCB not supported").
    const error = await verifyQuote(QUOTE, { collateral: COLLATERAL, trustedRoots: [ROOT], at: AT }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ObscuraError);
    expect((error as ObscuraError).code).toBe('ERR_VALUE_MISMATCH');
    expect((error as ObscuraError).message).toMatch(/below every TCB level/);
  });

  it('refuses a tampered quote, an unsupported version, and a time after the collateral expired', async () => {
    const verify = (quote: Uint8Array, at = AT) => codeOf(verifyQuote(quote, { collateral: COLLATERAL, trustedRoots: [ROOT], at }));
    expect(await verify(flipped(QUOTE, 0x3c))).toBe('ERR_SIGNATURE_INVALID');
    expect(await codeOf(() => parseQuote(flipped(QUOTE, 0x00, 0x08)))).toMatch(/^ERR_(UNSUPPORTED_VERSION|MALFORMED)$/);
    expect(await verify(QUOTE, new Date('2030-01-01T00:00:00Z'))).toBe('ERR_EXPIRED');
    const pck = codeOf(verifyPckChain(parseQuote(QUOTE).pckCertChainDer, parseCrl(COLLATERAL.pckCrlDer), COLLATERAL.pckCrlIssuerChainPem, { ...trust(), roots: loadTrustedRoots([text('nvidia/nvidia_device_root.pem')]) }));
    expect(['ERR_UNTRUSTED_ROOT', 'ERR_CHAIN_INVALID']).toContain(await pck);
  });
});

describe('NVIDIA H100 in workerd', () => {
  const ROOT = text('nvidia/nvidia_device_root.pem');
  const gpu = (name: 'h100-a' | 'h100-b') => ({ evidence: text(`nvidia/${name}/report.hex`), certChainPem: text(`nvidia/${name}/cert_chain.pem`), trustedRoots: [ROOT], at: NOW });
  const NONCE_A = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb';
  const NONCE_B = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';

  it('both captures verify with their nonces and 64 measurements', async () => {
    const a = await verifyNvidiaGpuEvidence({ ...gpu('h100-a'), expectedNonce: NONCE_A });
    expect(a.nonce).toBe(NONCE_A);
    expect(Object.keys(a.measurements)).toHaveLength(64);
    expect(a.opaque.driverVersion).toBe('550.90.07');
    const b = await verifyNvidiaGpuEvidence({ ...gpu('h100-b'), expectedNonce: NONCE_B });
    expect(b.nonce).toBe(NONCE_B);
  });

  it('refuses a tampered signature or nonce, a wrong expected nonce and a foreign root', async () => {
    const hex = gpu('h100-a').evidence.trim();
    const changeDigit = (at: number) => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);
    expect(await codeOf(verifyNvidiaGpuEvidence({ ...gpu('h100-a'), evidence: changeDigit(hex.length - 10) }))).toBe('ERR_SIGNATURE_INVALID');
    expect(await codeOf(verifyNvidiaGpuEvidence({ ...gpu('h100-a'), evidence: changeDigit(8) }))).toBe('ERR_SIGNATURE_INVALID');
    expect(await codeOf(verifyNvidiaGpuEvidence({ ...gpu('h100-a'), evidence: changeDigit(1) }))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(await codeOf(verifyNvidiaGpuEvidence({ ...gpu('h100-a'), expectedNonce: NONCE_B }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verifyNvidiaGpuEvidence({ ...gpu('h100-a'), trustedRoots: [text('tdx/intel_sgx_root_ca.pem')] }))).toBe('ERR_UNTRUSTED_ROOT');
  });
});
