/**
 * Certificate revocation lists. pkijs checks a CRL's signature and nextUpdate but not thisUpdate, and
 * silently skips a stale or unverifiable CRL; here every CRL that names a path certificate's issuer
 * must verify and be current at the injected time, and, once CRLs are supplied at all, every
 * certificate below the trust anchor must be covered by one (revocation never fails open).
 */
import * as asn1js from 'asn1js';
import { CertificateRevocationList } from 'pkijs';
import { bufferOf, toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import type { ParsedCertificate } from './certificate.ts';
import { formatName } from './certificate.ts';
import { pkijsEngine } from './engine.ts';
import { decodePem } from './pem.ts';
import { checkSignatureAlgorithm } from './signature-algorithm.ts';

export interface ParsedCrl {
  readonly der: Uint8Array;
  /** The underlying pkijs object; do not mutate it. */
  readonly pkijs: CertificateRevocationList;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  /** Hex serial numbers (as in ParsedCertificate.serialNumberHex) of the revoked certificates. */
  readonly revokedSerialNumbersHex: readonly string[];
}

export type CrlInput = Uint8Array | string | ParsedCrl;

/** Parse a CRL from DER, a PEM "X509 CRL" block, or return an already parsed one. Throws ERR_MALFORMED. */
export function parseCrl(input: CrlInput): ParsedCrl {
  let der: Uint8Array;
  if (typeof input === 'string') {
    const ders = decodePem(input, 'X509 CRL');
    if (ders.length !== 1) throw new ObscuraError('ERR_MALFORMED', `expected one PEM CRL, found ${ders.length}`);
    der = ders[0];
  } else if (input instanceof Uint8Array) {
    der = input.slice();
  } else if (input && typeof input === 'object' && input.der instanceof Uint8Array) {
    der = input.der.slice();
  } else {
    throw new ObscuraError('ERR_USAGE', 'a CRL must be DER bytes, a PEM string or a ParsedCrl');
  }
  let crl: CertificateRevocationList;
  try {
    const asn = asn1js.fromBER(bufferOf(der));
    if (asn.offset === -1 || asn.offset !== der.length) throw new Error(asn.result.error || 'trailing bytes after the CRL');
    crl = new CertificateRevocationList({ schema: asn.result });
    return Object.freeze({
      der,
      pkijs: crl,
      issuer: formatName(crl.issuer),
      thisUpdate: crl.thisUpdate.value,
      ...(crl.nextUpdate ? { nextUpdate: crl.nextUpdate.value } : {}),
      revokedSerialNumbersHex: Object.freeze(
        (crl.revokedCertificates ?? []).map((r) => toHex(new Uint8Array(r.userCertificate.valueBlock.valueHexView))),
      ),
    });
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `not a DER X.509 CRL: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

/**
 * Check revocation for a validated path (leaf first, trust anchor last) against `crls` at `at`.
 * CRLs whose issuer is not the issuer of a path certificate are ignored; all others must verify.
 * Throws ERR_REVOKED, ERR_NOT_YET_VALID / ERR_EXPIRED (CRL window), ERR_CHAIN_INVALID (bad CRL
 * signature, issuer not allowed to sign CRLs, unsupported critical extension, or a certificate no
 * CRL covers), ERR_MALFORMED (CRL without nextUpdate).
 */
export async function checkRevocation(path: readonly ParsedCertificate[], crls: readonly CrlInput[], at: Date): Promise<void> {
  const parsed = crls.map(parseCrl);
  const engine = pkijsEngine();
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i];
    const issuer = path[i + 1];
    const mine = parsed.filter((crl) => crl.pkijs.issuer.isEqual(issuer.pkijs.subject));
    if (mine.length === 0) {
      throw new ObscuraError('ERR_CHAIN_INVALID', `CRLs were given but none is issued by "${issuer.subject}", so "${cert.subject}" has no revocation status`);
    }
    for (const crl of mine) {
      await checkCrl(crl, issuer, at, engine);
      if (crl.pkijs.isCertificateRevoked(cert.pkijs)) {
        throw new ObscuraError('ERR_REVOKED', `"${cert.subject}" (serial ${cert.serialNumberHex}) is revoked by its issuer's CRL`);
      }
    }
  }
}

async function checkCrl(crl: ParsedCrl, issuer: ParsedCertificate, at: Date, engine: ReturnType<typeof pkijsEngine>): Promise<void> {
  const what = `CRL of "${crl.issuer}"`;
  checkSignatureAlgorithm(crl.pkijs.signatureAlgorithm, crl.pkijs.signature, what);
  for (const ext of crl.pkijs.crlExtensions?.extensions ?? []) {
    // Critical CRL extensions (issuingDistributionPoint, deltaCRLIndicator) narrow or change what the
    // CRL covers; this layer does not model scopes, so such a CRL cannot be relied on.
    if (ext.critical) throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: unsupported critical extension ${ext.extnID}`);
  }
  if (issuer.keyUsage && !issuer.keyUsage.cRLSign) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: the issuer's keyUsage does not allow cRLSign`);
  }
  let ok = false;
  try {
    ok = await crl.pkijs.verify({ issuerCertificate: issuer.pkijs }, engine);
  } catch (cause) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: signature cannot be checked`, { cause });
  }
  if (!ok) throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: signature does not verify under its issuer`);
  if (at.getTime() < crl.thisUpdate.getTime()) {
    throw new ObscuraError('ERR_NOT_YET_VALID', `${what}: thisUpdate ${crl.thisUpdate.toISOString()} is after ${at.toISOString()}`);
  }
  if (!crl.nextUpdate) throw new ObscuraError('ERR_MALFORMED', `${what}: no nextUpdate, so its freshness cannot be judged`);
  if (at.getTime() > crl.nextUpdate.getTime()) {
    throw new ObscuraError('ERR_EXPIRED', `${what}: nextUpdate ${crl.nextUpdate.toISOString()} is before ${at.toISOString()}`);
  }
}
