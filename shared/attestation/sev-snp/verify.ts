/**
 * Verify an SNP report: the endorsement key's chain (VCEK -> ASK -> ARK, or VLEK -> ASVK -> ARK)
 * against injected ARKs at an injected time, the report's signature under that key, and the binding
 * between key and report (the certified TCB equals REPORTED_TCB; a VCEK's hwID equals CHIP_ID).
 * Values against reference values are validate.ts's job.
 */
import { equalBytes } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import { type CertificateInput, importCertificatePublicKey, parseCertificate, parseCertificates } from '../x509/certificate.ts';
import type { CrlInput } from '../x509/crl.ts';
import { type ValidatedCertificatePath, validateCertificatePath } from '../x509/path.ts';
import { type SnpReport, parseSnpReport } from './report.ts';
import { verifySnpReportSignature } from './signature.ts';
import { type AmdEndorsementKeyExtensions, TURIN_HWID_BYTES, certifiedTcbRaw, decodeAmdEndorsementKeyExtensions } from './vcek-extensions.ts';

export interface VerifySnpReportOptions {
  /** The raw 1184-byte report (or one parsed before; it is re-parsed from its `raw` bytes). */
  readonly report: Uint8Array | SnpReport;
  /** The VCEK, for a report whose SIGNING_KEY is 0. */
  readonly vcek?: CertificateInput;
  /** The ASK that signed the VCEK (a PEM string may also be KDS's cert_chain: ASK then ARK). */
  readonly ask?: CertificateInput;
  /** The VLEK, for a report whose SIGNING_KEY is 1. */
  readonly vlek?: CertificateInput;
  /** The ASVK that signed the VLEK. */
  readonly asvk?: CertificateInput;
  /** Pinned AMD root keys (or the simulated TEE's local ARK); the chain must end at one of them. */
  readonly trustedArks: readonly CertificateInput[];
  /** The verification time (the verifier's clock: a CVM has no trusted time). */
  readonly at: Date;
  /** Optional AMD CRLs (KDS serves one per product, signed by the ARK, covering the ASK/ASVK). */
  readonly crls?: readonly CrlInput[];
}

export interface VerifiedSnpReport {
  readonly report: SnpReport;
  readonly signingKey: 'vcek' | 'vlek';
  readonly endorsementKey: AmdEndorsementKeyExtensions;
  readonly chain: ValidatedCertificatePath;
}

/**
 * Verify an SNP report and its endorsement chain. Throws ObscuraError: parse codes (see
 * parseSnpReport), chain codes (see validateCertificatePath), ERR_SIGNATURE_INVALID (bad or absent
 * signature), ERR_VALUE_MISMATCH (TCB, hwID or product line differ between report and key),
 * ERR_USAGE (no certificate for the key the report names).
 */
export async function verifySnpReport(options: VerifySnpReportOptions): Promise<VerifiedSnpReport> {
  const rawReport = options.report instanceof Uint8Array ? options.report : options.report?.raw;
  if (!(rawReport instanceof Uint8Array)) throw new ObscuraError('ERR_USAGE', 'report must be bytes or a parsed SnpReport');
  // Parse without a hint first: the report says which key signed it.
  const firstParse = parseSnpReport(rawReport);
  const signingKey = firstParse.signerInfo.signingKey;
  if (signingKey === 'none') throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the SNP report is not signed (SIGNING_KEY = none)');

  const keyInput = signingKey === 'vcek' ? options.vcek : options.vlek;
  const issuerInput = signingKey === 'vcek' ? options.ask : options.asvk;
  if (keyInput === undefined) {
    throw new ObscuraError('ERR_USAGE', `the SNP report is signed by a ${signingKey.toUpperCase()}, and none was given`);
  }
  const keyCert = parseCertificate(keyInput);
  const ext = decodeAmdEndorsementKeyExtensions(keyCert);
  // Re-parse with the product line the key certifies, so TCBs decode in the right layout (and a
  // v3+ report whose CPUID names another product line is refused).
  const report = parseSnpReport(rawReport, { productLine: ext.productLine });

  const chain = await validateCertificatePath({
    leaf: keyCert,
    // A pinned ARK among these is dropped; any other extra certificate fails the path.
    intermediates: issuerInput === undefined ? [] : typeof issuerInput === 'string' ? parseCertificates(issuerInput) : [issuerInput],
    trustedRoots: options.trustedArks,
    at: options.at,
    crls: options.crls,
    maxIntermediates: 1,
    leafProfile: { publicKey: 'ec-p384' },
  });

  const publicKey = await importCertificatePublicKey(keyCert, { name: 'ECDSA', namedCurve: 'P-384' });
  await verifySnpReportSignature(report, publicKey);

  if (certifiedTcbRaw(ext, report.reportedTcb.layout) !== report.reportedTcb.raw) {
    const s = ext.spl;
    const r = report.reportedTcb;
    throw new ObscuraError(
      'ERR_VALUE_MISMATCH',
      `the ${signingKey.toUpperCase()} certifies TCB bl=${s.bootloader} tee=${s.tee} snp=${s.snp} ucode=${s.microcode}` +
        `${s.fmc === undefined ? '' : ` fmc=${s.fmc}`} (raw 0x${certifiedTcbRaw(ext, r.layout).toString(16)}), ` +
        `the report's REPORTED_TCB is bl=${r.bootloader} tee=${r.tee} snp=${r.snp} ucode=${r.microcode}` +
        `${r.fmc === undefined ? '' : ` fmc=${r.fmc}`} (raw 0x${r.raw.toString(16)})`,
    );
  }
  if (signingKey === 'vcek') {
    if (!ext.hwId) throw new ObscuraError('ERR_MALFORMED', 'the VCEK has no hwID extension');
    // A masked CHIP_ID (all zero) cannot be matched; the VCEK signature alone then binds the chip.
    if (!report.chipIdMasked) {
      const reported = ext.productLine === 'Turin' ? report.chipId.subarray(0, TURIN_HWID_BYTES) : report.chipId;
      if (!equalBytes(reported, ext.hwId)) {
        throw new ObscuraError('ERR_VALUE_MISMATCH', "the report's CHIP_ID differs from the VCEK's hwID");
      }
    }
  } else if (ext.cspId === undefined || ext.hwId) {
    throw new ObscuraError('ERR_MALFORMED', 'a VLEK must carry cspId and no hwID');
  }

  return Object.freeze({ report, signingKey, endorsementKey: ext, chain });
}
