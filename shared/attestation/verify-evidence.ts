/**
 * One entry point for "is this evidence from an allowed platform state?": dispatches on the platform,
 * verifies against the roots of the reference values (a manifest's, or a client policy's), and checks
 * the reference values. Report-data binding is the caller's, since only it knows what was bound.
 */
import { ObscuraError } from '../errors.ts';
import type { Evidence } from './evidence.ts';
import { decodePem } from './x509/pem.ts';
import { certificateFingerprint } from './x509/certificate.ts';
import { verifySnpReport } from './sev-snp/verify.ts';
import { validateSnpReport } from './sev-snp/validate.ts';

/** Reference values for SEV-SNP evidence; `measurements` absent means "any" (the edge's check). */
export interface SnpReference {
  trustedRoots: readonly string[]; // PEM
  measurements?: readonly string[]; // hex, 48 bytes each
  minTcb?: { bootloader: number; tee: number; snp: number; microcode: number };
  allowDebug?: boolean;
  allowMigrationAgent?: boolean;
  allowSmt?: boolean;
}

export interface PlatformReferences {
  'sev-snp'?: SnpReference;
}

export interface EvidenceFacts {
  platform: Evidence['platform'];
  measurement: Uint8Array;
  reportData: Uint8Array;
  debug: boolean;
  version: number;
  chipId: Uint8Array;
  reportedTcb: { bootloader: number; tee: number; snp: number; microcode: number };
  /** The trusted vendor root the evidence chained to: its subject and the SHA-256 of its DER (hex). */
  root: { subject: string; fingerprintSha256: string };
}

export async function verifyEvidenceAgainstReference(evidence: Evidence, references: PlatformReferences, at: Date): Promise<EvidenceFacts> {
  const ref = references[evidence.platform];
  if (!ref) throw new ObscuraError('ERR_POLICY_VIOLATION', `no reference values admit ${evidence.platform} evidence`);
  const trustedArks = ref.trustedRoots.flatMap((pem) => decodePem(pem));
  if (trustedArks.length === 0) throw new ObscuraError('ERR_UNTRUSTED_ROOT', 'no trusted root is configured for sev-snp');
  const verified = await verifySnpReport({ report: evidence.report, vcek: evidence.vcek, ask: evidence.ask, trustedArks, at });
  const r = verified.report;
  // Without measurements (the edge's check) any measurement passes, but policy bits and TCB still count.
  validateSnpReport(r, {
    measurements: ref.measurements ?? [r.measurement],
    allowDebug: ref.allowDebug ?? false,
    allowMigrationAgent: ref.allowMigrationAgent ?? false,
    allowSmt: ref.allowSmt ?? true,
    minimumTcb: ref.minTcb,
  });
  const tcb = r.reportedTcb;
  return {
    platform: 'sev-snp',
    measurement: r.measurement,
    reportData: r.reportData,
    debug: r.policy.debug,
    version: r.version,
    chipId: r.chipId,
    reportedTcb: { bootloader: tcb.bootloader, tee: tcb.tee, snp: tcb.snp, microcode: tcb.microcode },
    root: { subject: verified.chain.root.subject, fingerprintSha256: await certificateFingerprint(verified.chain.root) },
  };
}
