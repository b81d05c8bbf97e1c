/**
 * Certificate parsing: DER or PEM into a `ParsedCertificate`, a read-only view over a pkijs
 * `Certificate` with the fields the verifiers look at already decoded. Parsed certificates are cached
 * by their DER bytes (roots and intermediates repeat on every verification and ASN.1 parsing is
 * most of a chain's cost), so treat every returned object as immutable.
 */
import * as asn1js from 'asn1js';
import { BasicConstraints, Certificate, type RelativeDistinguishedNames } from 'pkijs';
import { bufferOf, sha256, toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { decodePem } from './pem.ts';

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The extnValue OCTET STRING's contents (the DER of the extension's own value). */
  readonly value: Uint8Array;
}

export interface CertificateKeyUsage {
  readonly digitalSignature: boolean;
  readonly nonRepudiation: boolean;
  readonly keyEncipherment: boolean;
  readonly dataEncipherment: boolean;
  readonly keyAgreement: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
}

export type PublicKeyKind = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'rsa' | 'other';

export interface ParsedCertificate {
  readonly der: Uint8Array;
  /** The underlying pkijs object; do not mutate it (it is shared through the cache). */
  readonly pkijs: Certificate;
  /** Distinguished names rendered as `CN=..., O=...`, for messages and profile checks. */
  readonly subject: string;
  readonly issuer: string;
  /** Serial number as the two's-complement big-endian hex of its DER INTEGER ("00" for serial 0). */
  readonly serialNumberHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DER SubjectPublicKeyInfo, ready for `crypto.subtle.importKey('spki', ...)`. */
  readonly subjectPublicKeyInfo: Uint8Array;
  readonly publicKeyKind: PublicKeyKind;
  readonly extensions: readonly CertificateExtension[];
  /** Present when the certificate carries basicConstraints. */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLength?: number };
  /** Present when the certificate carries keyUsage. */
  readonly keyUsage?: CertificateKeyUsage;
  /** Subject and issuer names are equal (a root, or a self-issued key rollover cert). */
  readonly selfIssued: boolean;
}

export type CertificateInput = Uint8Array | string | ParsedCertificate;

const CACHE_MAX_ENTRIES = 256;
const cache = new Map<string, ParsedCertificate>();

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const EC_CURVES: Record<string, PublicKeyKind> = {
  '1.2.840.10045.3.1.7': 'ec-p256',
  '1.3.132.0.34': 'ec-p384',
  '1.3.132.0.35': 'ec-p521',
};
const NAME_ATTRIBUTES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/**
 * Parse one certificate from DER bytes, a PEM string holding exactly one CERTIFICATE block, or an
 * already parsed certificate (returned as the cached parse of its DER). Throws ERR_MALFORMED.
 */
export function parseCertificate(input: CertificateInput): ParsedCertificate {
  if (typeof input === 'string') {
    const ders = decodePem(input, 'CERTIFICATE');
    if (ders.length !== 1) {
      throw new ObscuraError('ERR_MALFORMED', `expected one PEM certificate, found ${ders.length}`);
    }
    return parseDer(ders[0]);
  }
  if (input instanceof Uint8Array) return parseDer(input);
  if (input && typeof input === 'object' && input.der instanceof Uint8Array) return parseDer(input.der);
  throw new ObscuraError('ERR_USAGE', 'a certificate must be DER bytes, a PEM string or a ParsedCertificate');
}

/** Parse a PEM bundle (several CERTIFICATE blocks, in order) or a list of certificate inputs. */
export function parseCertificates(input: string | readonly CertificateInput[]): ParsedCertificate[] {
  if (typeof input === 'string') return decodePem(input, 'CERTIFICATE').map(parseDer);
  return input.map(parseCertificate);
}

/** The extension with `oid`, if present. */
export function findExtension(cert: ParsedCertificate, oid: string): CertificateExtension | undefined {
  return cert.extensions.find((e) => e.oid === oid);
}

/** WebCrypto import parameters for certificate keys (spelled out: workerd's types lack the DOM names). */
export type CertificateKeyAlgorithm =
  | { readonly name: 'ECDSA' | 'ECDH'; readonly namedCurve: 'P-256' | 'P-384' | 'P-521' }
  | { readonly name: 'RSA-PSS' | 'RSASSA-PKCS1-v1_5' | 'RSA-OAEP'; readonly hash: 'SHA-256' | 'SHA-384' | 'SHA-512' };

/** Import the certificate's public key into WebCrypto. Throws ERR_MALFORMED if it does not fit `algorithm`. */
export async function importCertificatePublicKey(
  cert: ParsedCertificate,
  algorithm: CertificateKeyAlgorithm,
  usages: ('verify' | 'encrypt' | 'wrapKey' | 'deriveBits' | 'deriveKey')[] = ['verify'],
): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey('spki', bufferOf(cert.subjectPublicKeyInfo), algorithm, false, usages);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `the public key of "${cert.subject}" cannot be imported as ${algorithm.name}`, { cause });
  }
}

/** Lower-case hex SHA-256 of the certificate's DER: the usual way to name a pinned certificate. */
export async function certificateFingerprint(cert: ParsedCertificate): Promise<string> {
  return toHex(await sha256(cert.der));
}

/** Render a pkijs name as `CN=..., O=...` (in encoded order). */
export function formatName(name: RelativeDistinguishedNames): string {
  return name.typesAndValues
    .map((tv) => {
      const key = NAME_ATTRIBUTES[tv.type] ?? tv.type;
      const value = tv.value as { valueBlock?: { value?: unknown } };
      const text = typeof value?.valueBlock?.value === 'string' ? value.valueBlock.value : toHex(new Uint8Array(tv.value.toBER()));
      return `${key}=${text}`;
    })
    .join(', ');
}

function parseDer(der: Uint8Array): ParsedCertificate {
  const key = toHex(der);
  const hit = cache.get(key);
  if (hit) {
    // Refresh recency so that roots in constant use are not evicted.
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const parsed = decodeCertificate(der.slice());
  cache.set(key, parsed);
  if (cache.size > CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
  return parsed;
}

function decodeCertificate(der: Uint8Array): ParsedCertificate {
  if (der.length === 0) throw new ObscuraError('ERR_MALFORMED', 'empty certificate');
  let cert: Certificate;
  try {
    const asn = asn1js.fromBER(bufferOf(der));
    if (asn.offset === -1 || asn.offset !== der.length) throw new Error(asn.result.error || 'trailing bytes after the certificate');
    cert = new Certificate({ schema: asn.result });
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `not a DER X.509 certificate: ${(cause as Error)?.message ?? cause}`, { cause });
  }
  try {
    const extensions: CertificateExtension[] = (cert.extensions ?? []).map((e) => ({
      oid: e.extnID,
      critical: e.critical === true,
      value: new Uint8Array(e.extnValue.valueBlock.valueHexView),
    }));
    const oids = new Set<string>();
    for (const e of extensions) {
      // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
      if (oids.has(e.oid)) throw new ObscuraError('ERR_MALFORMED', `duplicate extension ${e.oid}`);
      oids.add(e.oid);
    }
    const subject = formatName(cert.subject);
    const issuer = formatName(cert.issuer);
    return Object.freeze({
      der,
      pkijs: cert,
      subject,
      issuer,
      serialNumberHex: toHex(new Uint8Array(cert.serialNumber.valueBlock.valueHexView)),
      notBefore: cert.notBefore.value,
      notAfter: cert.notAfter.value,
      subjectPublicKeyInfo: new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false)),
      publicKeyKind: publicKeyKindOf(cert),
      extensions: Object.freeze(extensions),
      basicConstraints: decodeBasicConstraints(cert),
      keyUsage: decodeKeyUsage(cert),
      selfIssued: cert.subject.isEqual(cert.issuer),
    });
  } catch (cause) {
    if (cause instanceof ObscuraError) throw cause;
    throw new ObscuraError('ERR_MALFORMED', `certificate fields cannot be decoded: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

function publicKeyKindOf(cert: Certificate): PublicKeyKind {
  const alg = cert.subjectPublicKeyInfo.algorithm;
  if (alg.algorithmId === OID_RSA_ENCRYPTION || alg.algorithmId === OID_RSASSA_PSS) return 'rsa';
  if (alg.algorithmId === OID_EC_PUBLIC_KEY && alg.algorithmParams instanceof asn1js.ObjectIdentifier) {
    return EC_CURVES[alg.algorithmParams.valueBlock.toString()] ?? 'other';
  }
  return 'other';
}

function decodeBasicConstraints(cert: Certificate): ParsedCertificate['basicConstraints'] {
  const ext = cert.extensions?.find((e) => e.extnID === OID_BASIC_CONSTRAINTS);
  if (!ext) return undefined;
  const bc = ext.parsedValue;
  if (!(bc instanceof BasicConstraints)) throw new ObscuraError('ERR_MALFORMED', 'basicConstraints cannot be decoded');
  let pathLength: number | undefined;
  if (bc.pathLenConstraint !== undefined) {
    pathLength = typeof bc.pathLenConstraint === 'number' ? bc.pathLenConstraint : bc.pathLenConstraint.valueBlock.valueDec;
    if (!Number.isSafeInteger(pathLength) || pathLength < 0) {
      throw new ObscuraError('ERR_MALFORMED', 'basicConstraints pathLenConstraint is not a small non-negative integer');
    }
  }
  return Object.freeze({ ca: bc.cA === true, ...(pathLength === undefined ? {} : { pathLength }) });
}

function decodeKeyUsage(cert: Certificate): CertificateKeyUsage | undefined {
  const ext = cert.extensions?.find((e) => e.extnID === OID_KEY_USAGE);
  if (!ext) return undefined;
  const bits = ext.parsedValue;
  if (!(bits instanceof asn1js.BitString)) throw new ObscuraError('ERR_MALFORMED', 'keyUsage cannot be decoded');
  const view = bits.valueBlock.valueHexView;
  const bit = (i: number) => ((view[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0;
  return Object.freeze({
    digitalSignature: bit(0),
    nonRepudiation: bit(1),
    keyEncipherment: bit(2),
    dataEncipherment: bit(3),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
  });
}
