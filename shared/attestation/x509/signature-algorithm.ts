/**
 * Signature algorithms this layer accepts on certificates and CRLs. pkijs verifies whatever the
 * certificate names (SHA-1 included) and takes RSASSA-PSS parameters as given, so the allow-list and
 * the PSS parameter profile live here: SHA-2 only; PSS with MGF1 over the same hash, a salt as long
 * as the hash (AMD's ARK/ASK/VCEK: SHA-384, salt 48) and trailer field 1.
 */
import { AlgorithmIdentifier, RSASSAPSSParams } from 'pkijs';
import { toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';

const ECDSA_OIDS = new Set([
  '1.2.840.10045.4.3.2', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4', // ecdsa-with-SHA512
]);
const RSA_PKCS1_OIDS = new Set([
  '1.2.840.113549.1.1.11', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13', // sha512WithRSAEncryption
]);
const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const HASH_LENGTH_BYTES: Record<string, number> = {
  '2.16.840.1.101.3.4.2.1': 32, // SHA-256
  '2.16.840.1.101.3.4.2.2': 48, // SHA-384
  '2.16.840.1.101.3.4.2.3': 64, // SHA-512
};

function isAbsentOrNull(params: unknown): boolean {
  if (params === undefined || params === null) return true;
  const p = params as { idBlock?: { tagClass?: number; tagNumber?: number } };
  return p.idBlock?.tagClass === 1 && p.idBlock?.tagNumber === 5; // ASN.1 NULL
}

function der(alg: AlgorithmIdentifier): string {
  return toHex(new Uint8Array(alg.toSchema().toBER(false)));
}

/**
 * Throws ERR_CHAIN_INVALID unless `outer` is an allowed signature algorithm with a sane parameter
 * profile and, where the signed structure repeats it (`inner`, the TBS copy), both are identical.
 */
export function checkSignatureAlgorithm(outer: AlgorithmIdentifier, inner: AlgorithmIdentifier | undefined, what: string): void {
  if (inner && der(inner) !== der(outer)) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: the signed and the outer signature algorithms differ`);
  }
  const oid = outer.algorithmId;
  if (ECDSA_OIDS.has(oid)) {
    if (outer.algorithmParams !== undefined) {
      throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: ECDSA signature algorithm must have no parameters`);
    }
    return;
  }
  if (RSA_PKCS1_OIDS.has(oid)) {
    if (!isAbsentOrNull(outer.algorithmParams)) {
      throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSA PKCS#1 signature algorithm parameters must be NULL`);
    }
    return;
  }
  if (oid === OID_RSASSA_PSS) {
    checkPssParams(outer, what);
    return;
  }
  throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: signature algorithm ${oid} is not allowed`);
}

function checkPssParams(alg: AlgorithmIdentifier, what: string): void {
  let params: RSASSAPSSParams;
  try {
    params = new RSASSAPSSParams({ schema: alg.algorithmParams });
  } catch (cause) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS parameters cannot be decoded`, { cause });
  }
  const hashOid = params.hashAlgorithm.algorithmId;
  const hashLength = HASH_LENGTH_BYTES[hashOid];
  if (!hashLength) throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS hash ${hashOid} is not allowed`);
  if (params.maskGenAlgorithm.algorithmId !== OID_MGF1) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS mask generation must be MGF1`);
  }
  let mgfHash: AlgorithmIdentifier;
  try {
    mgfHash = new AlgorithmIdentifier({ schema: params.maskGenAlgorithm.algorithmParams });
  } catch (cause) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS MGF1 hash cannot be decoded`, { cause });
  }
  if (mgfHash.algorithmId !== hashOid) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS MGF1 hash differs from the message hash`);
  }
  if (params.saltLength !== hashLength) {
    throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS salt is ${params.saltLength} bytes, expected ${hashLength}`);
  }
  if (params.trailerField !== 1) throw new ObscuraError('ERR_CHAIN_INVALID', `${what}: RSASSA-PSS trailer field must be 1`);
}
