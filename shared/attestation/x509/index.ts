/** X.509 for attestation verifiers: parse certificates and CRLs, validate a path to a pinned root. */
export { decodePem, decodePemBlocks, encodePem, type PemBlock } from './pem.ts';
export {
  certificateFingerprint,
  findExtension,
  formatName,
  importCertificatePublicKey,
  parseCertificate,
  parseCertificates,
  type CertificateExtension,
  type CertificateInput,
  type CertificateKeyAlgorithm,
  type CertificateKeyUsage,
  type ParsedCertificate,
  type PublicKeyKind,
} from './certificate.ts';
export { checkRevocation, parseCrl, type CrlInput, type ParsedCrl } from './crl.ts';
export {
  DEFAULT_ALLOWED_CRITICAL_EXTENSIONS,
  DEFAULT_MAX_INTERMEDIATES,
  validateCertificatePath,
  type LeafProfile,
  type ValidateCertificatePathOptions,
  type ValidatedCertificatePath,
} from './path.ts';
export { checkSignatureAlgorithm } from './signature-algorithm.ts';
export { pkijsEngine } from './engine.ts';
