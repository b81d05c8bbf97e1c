import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import {
  certificateFingerprint,
  decodePem,
  decodePemBlocks,
  encodePem,
  findExtension,
  importCertificatePublicKey,
  parseCertificate,
  parseCertificates,
  parseCrl,
} from './index.ts';

const VECTORS = new URL('../../../test/vectors/', import.meta.url);
const text = (p: string) => readFileSync(new URL(p, VECTORS), 'utf8');
const bytes = (p: string) => new Uint8Array(readFileSync(new URL(p, VECTORS)));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

describe('PEM', () => {
  it('round-trips DER and keeps block order, ignoring text around blocks', () => {
    const der = bytes('sev-snp/milan/vcek.der');
    const pem = encodePem(der);
    expect(pem.startsWith('-----BEGIN CERTIFICATE-----\n')).toBe(true);
    expect(pem.split('\n').every((l) => l.length <= 64)).toBe(true);
    expect(decodePem(`subject=whatever\n${pem}\ntrailing words\n${pem}`)).toEqual([der, der]);
    expect(decodePemBlocks(encodePem(new Uint8Array([1, 2, 3]), 'X509 CRL'))).toEqual([{ label: 'X509 CRL', der: new Uint8Array([1, 2, 3]) }]);
  });

  it('refuses garbled, unterminated, mislabelled and header-carrying blocks', () => {
    const pem = encodePem(bytes('sev-snp/milan/vcek.der'));
    expect(codeOf(() => decodePem('no pem here'))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem(pem.replace('-----END CERTIFICATE-----', '')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem(pem.replace('-----END CERTIFICATE-----', '-----END PRIVATE KEY-----')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem(pem.replace('MII', 'M!I')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem(pem.replace('-----BEGIN CERTIFICATE-----\n', '-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem(encodePem(new Uint8Array([1]), 'PRIVATE KEY')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => decodePem('-----BEGIN CERTIFICATE-----\nQUJD\nQQ\n-----END CERTIFICATE-----'))).toBe('ERR_MALFORMED');
  });
});

describe('parseCertificate', () => {
  it('decodes the fields verifiers use, from DER or PEM, with serial number 0', async () => {
    const vcek = parseCertificate(bytes('sev-snp/genoa/vcek.der'));
    expect(vcek.serialNumberHex).toBe('00');
    expect(vcek.subject).toBe('OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=SEV-VCEK');
    expect(vcek.issuer).toContain('CN=SEV-Genoa');
    expect(vcek.notBefore.toISOString()).toBe('2026-01-11T16:38:56.000Z');
    expect(vcek.notAfter.toISOString()).toBe('2033-01-11T16:38:56.000Z');
    expect(vcek.publicKeyKind).toBe('ec-p384');
    expect(vcek.basicConstraints).toBeUndefined();
    expect(vcek.selfIssued).toBe(false);
    expect(findExtension(vcek, '1.3.6.1.4.1.3704.1.4')?.value.length).toBe(64);
    const key = await importCertificatePublicKey(vcek, { name: 'ECDSA', namedCurve: 'P-384' });
    expect(key.type).toBe('public');
    await expect(importCertificatePublicKey(vcek, { name: 'RSA-PSS', hash: 'SHA-384' })).rejects.toMatchObject({ code: 'ERR_MALFORMED' });

    const [ask, ark] = parseCertificates(text('sev-snp/genoa/ask_ark.pem'));
    expect(ark.selfIssued).toBe(true);
    expect(ark.publicKeyKind).toBe('rsa');
    expect(ark.keyUsage).toMatchObject({ keyCertSign: true, cRLSign: true, digitalSignature: false });
    expect(ask.basicConstraints).toEqual({ ca: true, pathLength: 0 });
    expect(await certificateFingerprint(ark)).toBe('4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1');
    expect(parseCertificate(encodePem(ark.der))).toBe(ark); // cached by DER
    expect(parseCertificate(ark)).toBe(ark);
  });

  it('refuses several certificates where one is expected, trailing bytes, and non-certificates', () => {
    expect(codeOf(() => parseCertificate(text('sev-snp/genoa/ask_ark.pem')))).toBe('ERR_MALFORMED');
    const der = bytes('sev-snp/milan/vcek.der');
    const trailing = new Uint8Array(der.length + 1);
    trailing.set(der);
    expect(codeOf(() => parseCertificate(trailing))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseCertificate(new Uint8Array(0)))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseCertificate(bytes('tdx/spr-e4/root_crl.der')))).toBe('ERR_MALFORMED');
    expect(codeOf(() => parseCertificate(42 as unknown as Uint8Array))).toBe('ERR_USAGE');
  });

  it('parses CRLs from DER and PEM', () => {
    const crl = parseCrl(bytes('tdx/spr-e4/pck_crl.der'));
    expect(crl.issuer).toContain('CN=Intel SGX PCK Platform CA');
    expect(crl.revokedSerialNumbersHex.length).toBeGreaterThan(0);
    expect(crl.nextUpdate?.toISOString()).toBe('2023-07-08T07:27:52.000Z');
    expect(parseCrl(encodePem(crl.der, 'X509 CRL')).der).toEqual(crl.der);
    expect(codeOf(() => parseCrl(bytes('sev-snp/milan/vcek.der')))).toBe('ERR_MALFORMED');
  });

  it('fuzz: mutated certificates and CRLs yield a certificate or an ObscuraError, nothing else', () => {
    // Deterministic xorshift32 so a failure reproduces.
    let state = 0x9e3779b9;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    const seeds = [bytes('sev-snp/milan/vcek.der'), bytes('sev-snp/genoa/vcek.der'), ...parseCertificates(text('nvidia/h100-a/cert_chain.pem')).map((c) => c.der)];
    const crlSeed = bytes('tdx/spr-e4/pck_crl.der');
    let accepted = 0;
    for (let i = 0; i < 1000; i++) {
      const seed = i % 5 === 4 ? crlSeed : seeds[next() % seeds.length];
      const input = seed.slice(0, next() % 8 === 0 ? next() % seed.length : seed.length);
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips && input.length > 0; f++) input[next() % input.length] ^= 1 << (next() % 8);
      for (const parse of [parseCertificate, parseCrl] as const) {
        try {
          parse(input);
          accepted++;
        } catch (e) {
          if (!(e instanceof ObscuraError)) throw new Error(`iteration ${i}: ${parse.name} threw a non-ObscuraError: ${String(e)}`);
        }
      }
    }
    expect(accepted).toBeGreaterThan(0); // some flips land in signatures and still parse
  });
});
