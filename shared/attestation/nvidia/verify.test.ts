import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ObscuraError, type ErrorCode } from '../../errors.ts';
import { bufferOf, concatBytes, fromHex, toHex } from '../../bytes.ts';
import { parseNvidiaSpdmEvidence, SPDM_GET_MEASUREMENTS_REQUEST_BYTES } from './spdm.ts';
import { verifyMeasurementsSignature, verifyNvidiaSpdmEvidence } from './verify.ts';
import { decodePem } from '../x509/index.ts';
import { verifyNvidiaCertificateChain } from './certificate-chain.ts';
import { certificateFwid } from './fwid.ts';
import { verifyNvidiaGpuEvidence } from './index.ts';

const read = (path: string) => readFileSync(new URL(`../../../test/vectors/nvidia/${path}`, import.meta.url), 'utf8');
const ROOT = read('nvidia_device_root.pem');
const A = { evidence: read('h100-a/report.hex'), chain: read('h100-a/cert_chain.pem') };
const B = { evidence: read('h100-b/report.hex'), chain: read('h100-b/cert_chain.pem') };
const NOW = new Date('2026-01-01T00:00:00Z');
const A_BYTES = fromHex(A.evidence);

const RESP = SPDM_GET_MEASUREMENTS_REQUEST_BYTES;
const RECORD = RESP + 8;
const BLOCK_BYTES = 55;
const RESP_NONCE = RECORD + 64 * BLOCK_BYTES;
const OPAQUE_LEN = RESP_NONCE + 32;
const OPAQUE = OPAQUE_LEN + 2;
const SIGNATURE = A_BYTES.length - 96;

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'none'> {
  try {
    await p;
    return 'none';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

const toPem = (ders: readonly Uint8Array[]) =>
  ders.map((d) => `-----BEGIN CERTIFICATE-----\n${btoa(String.fromCharCode(...d))}\n-----END CERTIFICATE-----\n`).join('');

function indexOf(haystack: Uint8Array, ascii: string, from: number): number {
  const at = toHex(haystack).indexOf(toHex(new TextEncoder().encode(ascii)), from * 2);
  if (at < 0 || at % 2 !== 0) throw new Error(`${ascii} not found`);
  return at / 2;
}

function flipped(offset: number, mask = 0x01, base = A_BYTES): Uint8Array {
  const b = base.slice();
  b[offset] ^= mask;
  return b;
}

describe('verifyNvidiaGpuEvidence with the real H100 vectors', () => {
  it('h100-a verifies against the NVIDIA device root', async () => {
    const facts = await verifyNvidiaGpuEvidence({ evidence: A.evidence, certChainPem: A.chain, trustedRoots: [ROOT], at: NOW });
    expect(facts.nonce.startsWith('931d8dd0')).toBe(true);
    expect(Object.keys(facts.measurements)).toHaveLength(64);
    expect(facts.measurements[3]).toBe('164f445c3e282ca8e4ab07c2179b8e02c8e3a2ceb83f9fae8dddaee70aa57207d87792d1481b46c02f9dba6e1fe1e77e');
    expect(facts.opaque.driverVersion).toBe('550.90.07');
  });

  it('h100-b verifies, with the expected nonce as hex or bytes', async () => {
    const nonce = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
    for (const expectedNonce of [nonce, fromHex(nonce)]) {
      const facts = await verifyNvidiaGpuEvidence({ evidence: fromHex(B.evidence), certChainPem: B.chain, trustedRoots: [ROOT], at: NOW, expectedNonce });
      expect(facts.nonce).toBe(nonce);
      expect(facts.opaque.vbiosVersion).toBe('96.00.5E.00.01');
    }
  });

  it("the opaque FWID of h100-a is its attestation certificate's", async () => {
    const chain = await verifyNvidiaCertificateChain(A.chain, [ROOT], NOW);
    expect(toHex(certificateFwid(chain.leaf)!)).toBe(toHex(parseNvidiaSpdmEvidence(A.evidence).opaque.fwid!));
    expect(chain.path).toHaveLength(5);
    // h100-b's certificate has a FWID even though its older driver does not report one.
    const chainB = await verifyNvidiaCertificateChain(B.chain, [ROOT], NOW);
    expect(toHex(certificateFwid(chainB.leaf)!).startsWith('80e48f4e')).toBe(true);
  });

  it('refuses a nonce other than the one the verifier chose', async () => {
    const wrong = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcc';
    expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: A.evidence, certChainPem: A.chain, trustedRoots: [ROOT], at: NOW, expectedNonce: wrong }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: A.evidence, certChainPem: A.chain, trustedRoots: [ROOT], at: NOW, expectedNonce: 'abcd' }))).toBe('ERR_USAGE');
  });
});

describe('tampered h100-a evidence is refused', () => {
  const cases: [string, Uint8Array, ErrorCode][] = [
    ['request version', flipped(0), 'ERR_UNSUPPORTED_VERSION'],
    ['request code', flipped(1), 'ERR_MALFORMED'],
    ['request param1', flipped(2, 0x02), 'ERR_RESERVED_NONZERO'],
    ['request param2', flipped(3), 'ERR_MALFORMED'],
    ['request nonce', flipped(4 + 17), 'ERR_SIGNATURE_INVALID'],
    ['request slot id', flipped(36, 0x80), 'ERR_RESERVED_NONZERO'],
    ['response version', flipped(RESP), 'ERR_UNSUPPORTED_VERSION'],
    ['response code', flipped(RESP + 1), 'ERR_MALFORMED'],
    ['response param1', flipped(RESP + 2), 'ERR_RESERVED_NONZERO'],
    ['response param2', flipped(RESP + 3), 'ERR_MALFORMED'],
    ['number of blocks', flipped(RESP + 4), 'ERR_MALFORMED'],
    ['record length', flipped(RESP + 6), 'ERR_MALFORMED'],
    ['block index (to an unused index)', flipped(RECORD + 63 * BLOCK_BYTES, 0x80), 'ERR_SIGNATURE_INVALID'],
    ['block index (to a used index)', flipped(RECORD + 0 * BLOCK_BYTES, 0x02), 'ERR_MALFORMED'],
    ['block measurement specification', flipped(RECORD + 1), 'ERR_MALFORMED'],
    ['block size', flipped(RECORD + 2), 'ERR_MALFORMED'],
    ['block value type (to another defined type)', flipped(RECORD + 4), 'ERR_SIGNATURE_INVALID'],
    ['block value type (raw bitstream bit)', flipped(RECORD + 4, 0x80), 'ERR_SIGNATURE_INVALID'],
    ['block value size', flipped(RECORD + 5), 'ERR_MALFORMED'],
    ['block value', flipped(RECORD + 7 + 20), 'ERR_SIGNATURE_INVALID'],
    ['responder nonce', flipped(RESP_NONCE + 5), 'ERR_SIGNATURE_INVALID'],
    ['opaque length', flipped(OPAQUE_LEN), 'ERR_MALFORMED'],
    ['opaque TLV type (to an unknown type)', flipped(OPAQUE, 0x80), 'ERR_SIGNATURE_INVALID'],
    ['opaque TLV length', flipped(OPAQUE + 2), 'ERR_MALFORMED'],
    ['opaque driver version', flipped(indexOf(A_BYTES, '550.90.07', OPAQUE) + 4), 'ERR_SIGNATURE_INVALID'],
    ['opaque FWID', flipped(A_BYTES.length - 96 - 5 - 10), 'ERR_SIGNATURE_INVALID'],
    ['signature r', flipped(SIGNATURE + 3), 'ERR_SIGNATURE_INVALID'],
    ['signature s', flipped(SIGNATURE + 48 + 3), 'ERR_SIGNATURE_INVALID'],
  ];
  it.each(cases)('%s', async (_, evidence, code) => {
    expect(await codeOf(verifyNvidiaGpuEvidence({ evidence, certChainPem: A.chain, trustedRoots: [ROOT], at: NOW }))).toBe(code);
  });

  it('in every measurement block', async () => {
    for (let k = 0; k < 64; k++) {
      const value = RECORD + k * BLOCK_BYTES + 7 + (k % 48);
      expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: flipped(value, 1 << k % 8), certChainPem: A.chain, trustedRoots: [ROOT], at: NOW }))).toBe('ERR_SIGNATURE_INVALID');
      expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: flipped(RECORD + k * BLOCK_BYTES + 3, 0x01), certChainPem: A.chain, trustedRoots: [ROOT], at: NOW }))).toBe('ERR_MALFORMED');
    }
  });

  it('at every byte, with no flip accepted', async () => {
    const { leafPublicKey } = await verifyNvidiaCertificateChain(A.chain, [ROOT], NOW);
    const seen = new Map<string, number>();
    for (let i = 0; i < A_BYTES.length; i++) {
      let code: string;
      try {
        await verifyMeasurementsSignature(parseNvidiaSpdmEvidence(flipped(i, 1 << i % 8)), leafPublicKey);
        code = 'none';
      } catch (e) {
        if (!(e instanceof ObscuraError)) throw e;
        code = e.code;
      }
      expect(code, `offset ${i}`).not.toBe('none');
      seen.set(code, (seen.get(code) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['ERR_MALFORMED', 'ERR_RESERVED_NONZERO', 'ERR_SIGNATURE_INVALID', 'ERR_UNSUPPORTED_VERSION']);
  });
});

describe('the certificate chain', () => {
  const aCerts = decodePem(A.chain);
  const bCerts = decodePem(B.chain);

  it('h100-a chain with h100-b evidence: the signature is not the leaf key', async () => {
    expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: B.evidence, certChainPem: A.chain, trustedRoots: [ROOT], at: NOW }))).toBe('ERR_SIGNATURE_INVALID');
  });

  it('a chain missing a certificate', async () => {
    for (let drop = 0; drop < 5; drop++) {
      const pem = toPem(aCerts.filter((_, i) => i !== drop));
      const code = await codeOf(verifyNvidiaGpuEvidence({ evidence: A.evidence, certChainPem: pem, trustedRoots: [ROOT], at: NOW }));
      expect(code, `without certificate ${drop}`).toBe('ERR_CHAIN_INVALID');
    }
  });

  it("an intermediate from another GPU's chain", async () => {
    const mixed = [aCerts[0], bCerts[1], ...aCerts.slice(2)];
    expect(await codeOf(verifyNvidiaCertificateChain(mixed, [ROOT], NOW))).toBe('ERR_CHAIN_INVALID');
  });

  it('the intermediates out of order', async () => {
    const swapped = [aCerts[0], aCerts[2], aCerts[1], aCerts[3], aCerts[4]];
    expect(await codeOf(verifyNvidiaCertificateChain(swapped, [ROOT], NOW))).toBe('ERR_CHAIN_INVALID');
  });

  it('the chain in leaf-last order (its last certificate is then no trusted root)', async () => {
    expect(await codeOf(verifyNvidiaCertificateChain([...aCerts].reverse(), [ROOT], NOW))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('a foreign root, or none', async () => {
    const foreign = await makePki();
    expect(await codeOf(verifyNvidiaCertificateChain(A.chain, [foreign.root], NOW))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(verifyNvidiaCertificateChain(A.chain, [], NOW))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(verifyNvidiaGpuEvidence({ evidence: A.evidence, certChainPem: A.chain, trustedRoots: [toPem([foreign.root])], at: NOW }))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('a time before the chain was valid', async () => {
    expect(await codeOf(verifyNvidiaCertificateChain(A.chain, [ROOT], new Date('2021-06-01T00:00:00Z')))).toBe('ERR_NOT_YET_VALID');
    expect(await codeOf(verifyNvidiaCertificateChain(A.chain, [ROOT], new Date('nonsense')))).toBe('ERR_USAGE');
  });

  it('malformed PEM or DER', async () => {
    expect(await codeOf(verifyNvidiaCertificateChain(A.chain.replace('MIID', 'MI*D'), [ROOT], NOW))).toBe('ERR_MALFORMED');
    expect(await codeOf(verifyNvidiaCertificateChain('', [ROOT], NOW))).toBe('ERR_MALFORMED');
    const trailing = [concatBytes(aCerts[0], Uint8Array.of(0)), ...aCerts.slice(1)];
    expect(await codeOf(verifyNvidiaCertificateChain(trailing, [ROOT], NOW))).toBe('ERR_MALFORMED');
  });
});

// A locally made 5-certificate PKI shaped like NVIDIA's, to reach the rules the real chains never break.
interface Pki {
  root: Uint8Array;
  chain: Uint8Array[]; // leaf first, root last
  leafKey: CryptoKey;
}

interface PkiOptions {
  pathLen?: { depth: number; value: number };
  criticalUnknownAt?: number;
  leafIsCa?: boolean;
  leafKeyUsage?: number;
  leafFwid?: Uint8Array;
  leafNotAfter?: Date;
  /** Name the leaf's issuer so (e.g. as a real NVIDIA BROM certificate), still signing with a local key. */
  leafIssuer?: pkijs.RelativeDistinguishedNames;
}

const P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const;

async function makePki(options: PkiOptions = {}): Promise<Pki> {
  const keys: CryptoKeyPair[] = [];
  for (let i = 0; i < 5; i++) keys.push((await crypto.subtle.generateKey(P384, true, ['sign', 'verify'])) as CryptoKeyPair);
  const names = ['Test GSP FMC LF', 'Test GSP BROM', 'Test Provisioner ICA', 'Test Identity', 'Test Device Identity CA'];
  const chain: Uint8Array[] = [];
  for (let depth = 0; depth < 5; depth++) {
    const issuer = Math.min(depth + 1, 4);
    const cert = new pkijs.Certificate();
    cert.version = 2;
    cert.serialNumber = new asn1js.Integer({ value: depth + 1 });
    const cn = (n: string) => new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: n }) });
    cert.subject.typesAndValues.push(cn(names[depth]));
    if (depth === 0 && options.leafIssuer) cert.issuer = options.leafIssuer;
    else cert.issuer.typesAndValues.push(cn(names[issuer]));
    cert.notBefore.value = new Date('2022-01-01T00:00:00Z');
    cert.notAfter.value = depth === 0 && options.leafNotAfter ? options.leafNotAfter : new Date('2049-01-01T00:00:00Z');
    await cert.subjectPublicKeyInfo.importKey(keys[depth].publicKey);
    const ext: pkijs.Extension[] = [];
    const isCa = depth > 0 || options.leafIsCa === true;
    if (isCa) {
      // pkijs encodes pathLenConstraint whenever the key is present, even as undefined.
      const bc = options.pathLen?.depth === depth ? { cA: true, pathLenConstraint: options.pathLen.value } : { cA: true };
      ext.push(new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: new pkijs.BasicConstraints(bc).toSchema().toBER(false) }));
    }
    const ku = depth === 0 ? (options.leafKeyUsage ?? 0x80) : 0x06; // digitalSignature | keyCertSign+cRLSign
    ext.push(new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: new asn1js.BitString({ valueHex: Uint8Array.of(ku).buffer, unusedBits: 1 }).toBER(false) }));
    if (options.criticalUnknownAt === depth) {
      ext.push(new pkijs.Extension({ extnID: '1.3.6.1.4.1.99999.1', critical: true, extnValue: new asn1js.Null().toBER(false) }));
    }
    if (depth === 0 && options.leafFwid) {
      const fwid = new asn1js.Sequence({
        value: [
          new asn1js.Integer({ value: 1 }),
          new asn1js.Sequence(),
          new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '2.16.840.1.101.3.4.2.2' }), new asn1js.OctetString({ valueHex: options.leafFwid.slice().buffer })] }),
        ],
      });
      ext.push(new pkijs.Extension({ extnID: '2.23.133.5.4.1', critical: false, extnValue: fwid.toBER(false) }));
    }
    cert.extensions = ext;
    await cert.sign(keys[issuer].privateKey, 'SHA-384');
    chain.push(new Uint8Array(cert.toSchema(true).toBER(false)));
  }
  return { root: chain[4], chain, leafKey: keys[0].privateKey };
}

/** h100-a's request and response, re-signed by a local leaf key; `edit` changes the signed bytes first. */
async function resign(leafKey: CryptoKey, edit: (b: Uint8Array) => void = () => {}): Promise<Uint8Array> {
  const signed = A_BYTES.slice(0, SIGNATURE);
  edit(signed);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, leafKey, signed));
  return concatBytes(signed, sig);
}

describe('chain rules on a locally made PKI', () => {
  const A_FWID = fromHex('f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d');
  let good: Pki;
  beforeAll(async () => {
    good = await makePki({ leafFwid: A_FWID });
  });

  const verify = (pki: Pki, evidence: Uint8Array, at = NOW) =>
    verifyNvidiaSpdmEvidence(parseNvidiaSpdmEvidence(evidence), { certChain: pki.chain, trustedRoots: [pki.root], at });

  it('a well-formed chain and signature verify (the harness itself is sound)', async () => {
    expect(await codeOf(verify(good, await resign(good.leafKey)))).toBe('none');
    // ...and the NVIDIA root does not vouch for it.
    const ev = parseNvidiaSpdmEvidence(await resign(good.leafKey));
    expect(await codeOf(verifyNvidiaSpdmEvidence(ev, { certChain: good.chain, trustedRoots: [ROOT], at: NOW }))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('a signed FWID that differs from the certificate', async () => {
    const fwidAt = SIGNATURE - 5 - 48; // FWID TLV value, before the last 5-byte TLV
    expect(await codeOf(verify(good, await resign(good.leafKey, (b) => (b[fwidAt] ^= 1))))).toBe('ERR_VALUE_MISMATCH');
    const noFwid = await makePki();
    expect(await codeOf(verify(noFwid, await resign(noFwid.leafKey)))).toBe('ERR_VALUE_MISMATCH');
  });

  it('a forged leaf under the real NVIDIA intermediates (pkijs validates only from the last element)', async () => {
    const realBrom = pkijs.Certificate.fromBER(bufferOf(decodePem(A.chain)[1]));
    const pki = await makePki({ leafIssuer: realBrom.subject, leafFwid: A_FWID });
    const forged = [pki.chain[0], ...decodePem(A.chain).slice(1)];
    const ev = parseNvidiaSpdmEvidence(await resign(pki.leafKey));
    expect(await codeOf(verifyNvidiaSpdmEvidence(ev, { certChain: forged, trustedRoots: [ROOT], at: NOW }))).toBe('ERR_CHAIN_INVALID');
  });

  it('pathLenConstraint, which pkijs alone ignores', async () => {
    const pki = await makePki({ pathLen: { depth: 2, value: 0 } });
    expect(await codeOf(verify(pki, await resign(pki.leafKey)))).toBe('ERR_CHAIN_INVALID');
    const fine = await makePki({ pathLen: { depth: 2, value: 1 }, leafFwid: A_FWID });
    expect(await codeOf(verify(fine, await resign(fine.leafKey)))).toBe('none');
  });

  it('an unknown critical extension anywhere in the chain', async () => {
    for (const depth of [0, 2, 4]) {
      const pki = await makePki({ criticalUnknownAt: depth, leafFwid: A_FWID });
      expect(await codeOf(verify(pki, await resign(pki.leafKey))), `at depth ${depth}`).toBe('ERR_CHAIN_INVALID');
    }
  });

  it('a leaf that is a CA, or lacks digitalSignature', async () => {
    const ca = await makePki({ leafIsCa: true, leafFwid: A_FWID });
    expect(await codeOf(verify(ca, await resign(ca.leafKey)))).toBe('ERR_CHAIN_INVALID');
    const ku = await makePki({ leafKeyUsage: 0x40, leafFwid: A_FWID });
    expect(await codeOf(verify(ku, await resign(ku.leafKey)))).toBe('ERR_CHAIN_INVALID');
  });

  it('an expired leaf', async () => {
    const pki = await makePki({ leafNotAfter: new Date('2025-01-01T00:00:00Z'), leafFwid: A_FWID });
    expect(await codeOf(verify(pki, await resign(pki.leafKey)))).toBe('ERR_EXPIRED');
    expect(await codeOf(verify(pki, await resign(pki.leafKey), new Date('2024-06-01T00:00:00Z')))).toBe('none');
  });
});
