/**
 * verifySnpEvidence: the one call the attestation service and clients make. Verify (chain,
 * signature, key binding), then, when a policy is given, validate; return the facts a caller acts on.
 */
import { type ParsedCertificate, certificateFingerprint } from '../x509/certificate.ts';
import type { GuestPolicy } from './guest-policy.ts';
import type { PlatformInfo } from './platform-info.ts';
import type { SnpReferencePolicy } from './policy.ts';
import type { SnpProductLine } from './product.ts';
import type { FirmwareVersion, SnpReport } from './report.ts';
import type { TcbVersion } from './tcb.ts';
import { validateSnpReport } from './validate.ts';
import { type VerifySnpReportOptions, verifySnpReport } from './verify.ts';

export interface VerifySnpEvidenceOptions extends VerifySnpReportOptions {
  /** Reference values; when absent only verification happens (the caller validates later). */
  readonly policy?: SnpReferencePolicy;
}

export interface SnpEvidenceFacts {
  readonly platform: 'amd-sev-snp';
  readonly version: number;
  readonly productLine: SnpProductLine;
  readonly measurement: Uint8Array;
  readonly reportData: Uint8Array;
  readonly hostData: Uint8Array;
  readonly chipId: Uint8Array;
  readonly chipIdMasked: boolean;
  readonly vmpl: number;
  readonly guestSvn: number;
  readonly policy: GuestPolicy;
  readonly platformInfo: PlatformInfo;
  readonly reportedTcb: TcbVersion;
  readonly currentTcb: TcbVersion;
  readonly committedTcb: TcbVersion;
  readonly launchTcb: TcbVersion;
  readonly currentFirmware: FirmwareVersion;
  readonly committedFirmware: FirmwareVersion;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly signingKey: 'vcek' | 'vlek';
  readonly endorsementKey: {
    readonly productName: string;
    readonly serialNumberHex: string;
    readonly notBefore: Date;
    readonly notAfter: Date;
    readonly cspId?: string;
  };
  /** The trusted ARK the chain ended at: its subject and the SHA-256 of its DER (lower-case hex). */
  readonly root: { readonly subject: string; readonly fingerprintSha256: string; readonly certificate: ParsedCertificate };
  /** The full parsed report. */
  readonly report: SnpReport;
}

/**
 * Verify SNP evidence (report + VCEK/ASK or VLEK/ASVK) against pinned ARKs at `at`, and validate
 * it against `policy` when one is given. Throws ObscuraError (see verifySnpReport and
 * validateSnpReport for the codes).
 */
export async function verifySnpEvidence(options: VerifySnpEvidenceOptions): Promise<SnpEvidenceFacts> {
  const verified = await verifySnpReport(options);
  const { report } = verified;
  if (options.policy) validateSnpReport(report, options.policy);
  const key = verified.chain.leaf;
  const root = verified.chain.root;
  return Object.freeze({
    platform: 'amd-sev-snp',
    version: report.version,
    productLine: verified.endorsementKey.productLine,
    measurement: report.measurement,
    reportData: report.reportData,
    hostData: report.hostData,
    chipId: report.chipId,
    chipIdMasked: report.chipIdMasked,
    vmpl: report.vmpl,
    guestSvn: report.guestSvn,
    policy: report.policy,
    platformInfo: report.platformInfo,
    reportedTcb: report.reportedTcb,
    currentTcb: report.currentTcb,
    committedTcb: report.committedTcb,
    launchTcb: report.launchTcb,
    currentFirmware: report.currentFirmware,
    committedFirmware: report.committedFirmware,
    familyId: report.familyId,
    imageId: report.imageId,
    idKeyDigest: report.idKeyDigest,
    authorKeyDigest: report.authorKeyDigest,
    reportId: report.reportId,
    signingKey: verified.signingKey,
    endorsementKey: Object.freeze({
      productName: verified.endorsementKey.productName,
      serialNumberHex: key.serialNumberHex,
      notBefore: key.notBefore,
      notAfter: key.notAfter,
      ...(verified.endorsementKey.cspId !== undefined ? { cspId: verified.endorsementKey.cspId } : {}),
    }),
    root: Object.freeze({ subject: root.subject, fingerprintSha256: await certificateFingerprint(root), certificate: root }),
    report,
  });
}
