/**
 * Issuing ECDSA P-256 certificates with @peculiar/x509 over WebCrypto: the service's mesh CA and the
 * worker certificates it issues, and the local deployment's TLS CA. Verification is elsewhere
 * (attestation/x509); this file only makes certificates.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { bufferOf, randomBytes, toHex } from '../bytes.ts';

x509.cryptoProvider.set(crypto);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface IssuedKeyPair {
  certificatePem: string;
  certificateDer: Uint8Array;
  privateKey: CryptoKey;
}

const withNewline = (pem: string) => (pem.endsWith('\n') ? pem : `${pem}\n`);

function serial(): string {
  const s = randomBytes(16);
  s[0] &= 0x7f; // positive INTEGER
  return toHex(s);
}

export async function generateP256KeyPair(extractable = true): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_P256, extractable, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

export async function createCertificateAuthority(input: { commonName: string; notBefore: Date; notAfter: Date; keys?: CryptoKeyPair }): Promise<IssuedKeyPair> {
  const keys = input.keys ?? (await generateP256KeyPair());
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${input.commonName}`,
    notBefore: input.notBefore,
    notAfter: input.notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificatePem: withNewline(cert.toString('pem')), certificateDer: new Uint8Array(cert.rawData), privateKey: keys.privateKey };
}

export async function issueLeafCertificate(input: {
  ca: { certificatePem: string; privateKey: CryptoKey };
  subjectPublicKeySpki: Uint8Array;
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'server+client';
  notBefore: Date;
  notAfter: Date;
}): Promise<{ certificatePem: string; certificateDer: Uint8Array }> {
  const caCert = new x509.X509Certificate(input.ca.certificatePem);
  const publicKey = await crypto.subtle.importKey('spki', bufferOf(input.subjectPublicKeySpki), EC_P256, true, ['verify']);
  const eku = [];
  if (input.usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (input.usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const names = [
    ...(input.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(input.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${input.commonName}`,
    issuer: caCert.subject,
    notBefore: input.notBefore,
    notAfter: input.notAfter,
    publicKey,
    signingKey: input.ca.privateKey,
    signingAlgorithm: SIGNING,
    extensions,
  });
  return { certificatePem: withNewline(cert.toString('pem')), certificateDer: new Uint8Array(cert.rawData) };
}

/** PKCS#8 PEM of an extractable private key (for the TLS servers' key files, mode 0600). */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = new Uint8Array((await crypto.subtle.exportKey('pkcs8', key)) as ArrayBuffer);
  return withNewline(x509.PemConverter.encode(bufferOf(der), 'PRIVATE KEY'));
}

export async function spkiOf(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array((await crypto.subtle.exportKey('spki', key)) as ArrayBuffer);
}

/** SubjectPublicKeyInfo (DER) of a certificate. */
export function certificateSpki(pemOrDer: string | Uint8Array): Uint8Array {
  const cert = typeof pemOrDer === 'string' ? new x509.X509Certificate(pemOrDer) : new x509.X509Certificate(bufferOf(pemOrDer));
  return new Uint8Array(cert.publicKey.rawData);
}

export function certificateDer(pem: string): Uint8Array {
  return new Uint8Array(new x509.X509Certificate(pem).rawData);
}

/** A CA kept in sealed state: its certificate (DER) and PKCS#8 private key, back as an issuer. */
export async function importCertificateAuthority(input: { certificateDer: Uint8Array; privateKeyPkcs8: Uint8Array }): Promise<IssuedKeyPair & { notAfter: Date }> {
  const cert = new x509.X509Certificate(bufferOf(input.certificateDer));
  const privateKey = await crypto.subtle.importKey('pkcs8', bufferOf(input.privateKeyPkcs8), EC_P256, false, ['sign']);
  return { certificatePem: withNewline(cert.toString('pem')), certificateDer: new Uint8Array(cert.rawData), privateKey, notAfter: cert.notAfter };
}

export async function exportPkcs8(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array((await crypto.subtle.exportKey('pkcs8', key)) as ArrayBuffer);
}
