/**
 * One entry point for "is this evidence from an allowed platform state?": dispatches on the platform,
 * verifies against the roots of the reference values (a manifest's, or a client policy's), and checks
 * the reference values. Report-data binding is the caller's, since only it knows what was bound.
 */
import { ObscuraError } from '../errors.ts';
import type { Evidence, TdxEvidence } from './evidence.ts';
import { decodePem } from './x509/pem.ts';
import { certificateFingerprint } from './x509/certificate.ts';
import { validateCertificatePath } from './x509/path.ts';
import { verifySnpReport } from './sev-snp/verify.ts';
import { validateSnpReport } from './sev-snp/validate.ts';
import { sha256, toHex } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import type { GpuEvidence } from './gpu-evidence.ts';
import { parseNvidiaSpdmEvidence } from './nvidia/spdm.ts';
import { verifyNvidiaSpdmEvidence } from './nvidia/verify.ts';
import { nvidiaGpuFacts } from './nvidia/facts.ts';
import { nvidiaGpuPolicy } from './nvidia/policy.ts';
import { validateNvidiaGpuFacts } from './nvidia/validate.ts';
import { certificateFwid } from './nvidia/fwid.ts';
import { parseQuote } from './tdx/quote.ts';
import { verifyQuote } from './tdx/verify.ts';
import { tdxFacts, type TdxFacts } from './tdx/facts.ts';
import { DEFAULT_ACCEPTED_TCB_STATUSES, type TdxPolicy } from './tdx/policy.ts';
import { isDebugTd, validateTdxFacts } from './tdx/validate.ts';
import type { TdxTcbStatus } from './tdx/tcb-status.ts';

/** Reference values for SEV-SNP evidence; `measurements` absent means "any" (the edge's check). */
export interface SnpReference {
  trustedRoots: readonly string[]; // PEM
  measurements?: readonly string[]; // hex, 48 bytes each
  minTcb?: { bootloader: number; tee: number; snp: number; microcode: number };
  allowDebug?: boolean;
  allowMigrationAgent?: boolean;
  allowSmt?: boolean;
}

/**
 * Reference values for Intel TDX evidence (a manifest's `platforms.tdx`), in the terms of
 * tdx/policy.ts: `mrTd` absent means "any"; each RTMR, MRCONFIGID and MROWNER list present must hold
 * the quoted value. Only the `acceptedTcbStatuses` (default UpToDate) pass, and no debug TD unless allowed.
 */
export interface TdxReference {
  trustedRoots: readonly string[]; // PEM: the Intel SGX Root CA (or the local simulated one)
  mrTd?: readonly string[]; // hex, 48 bytes each
  rtmr0?: readonly string[];
  rtmr1?: readonly string[];
  rtmr2?: readonly string[];
  rtmr3?: readonly string[];
  mrConfigId?: readonly string[];
  mrOwner?: readonly string[];
  acceptedTcbStatuses?: readonly TdxTcbStatus[];
  allowDebug?: boolean;
}

export interface PlatformReferences {
  'sev-snp'?: SnpReference;
  tdx?: TdxReference;
}

/**
 * What verified evidence states, in platform-neutral terms: `measurement` is the launch measurement
 * (SEV-SNP MEASUREMENT, TDX MRTD; 48 bytes), `reportData` the 64 bytes the guest bound, `chipId` a
 * value stable per machine (SEV-SNP CHIP_ID; TDX: the PPID of the Intel-certified PCK certificate) or
 * all zeros when the platform hides it. Platform-specific facts sit in their own optional fields.
 */
export interface EvidenceFacts {
  platform: Evidence['platform'];
  measurement: Uint8Array;
  reportData: Uint8Array;
  debug: boolean;
  /** The report's (SEV-SNP) or quote's (TDX) layout version. */
  version: number;
  chipId: Uint8Array;
  /** SEV-SNP only: the TCB the report states. */
  reportedTcb?: { bootloader: number; tee: number; snp: number; microcode: number };
  /** TDX only: the verified quote's facts (hex), with the TCB status Intel's collateral gives it. */
  tdx?: TdxFacts;
  /** The trusted vendor root the evidence chained to: its subject and the SHA-256 of its DER (hex). */
  root: { subject: string; fingerprintSha256: string };
}

export async function verifyEvidenceAgainstReference(evidence: Evidence, references: PlatformReferences, at: Date): Promise<EvidenceFacts> {
  if (evidence.platform === 'tdx') return verifyTdxAgainstReference(evidence, references.tdx, at);
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

/**
 * The TDX branch: the quote's PCK chain, QE report, attestation key and collateral verified under the
 * reference's roots at `at` (tdx/verify.ts), then its values against the reference (tdx/validate.ts).
 */
async function verifyTdxAgainstReference(evidence: TdxEvidence, ref: TdxReference | undefined, at: Date): Promise<EvidenceFacts> {
  if (!ref) throw new ObscuraError('ERR_POLICY_VIOLATION', 'no reference values admit tdx evidence');
  const trustedRoots = ref.trustedRoots.flatMap((pem) => decodePem(pem));
  if (trustedRoots.length === 0) throw new ObscuraError('ERR_UNTRUSTED_ROOT', 'no trusted root is configured for tdx');
  const quote = parseQuote(evidence.quote);
  const verified = await verifyQuote(quote, { collateral: evidence.collateral, trustedRoots, at });
  // Without MRTDs (a verifier that checks roots only) any MRTD passes; a launch measurement not listed
  // is the same refusal on every platform.
  if (ref.mrTd !== undefined && !ref.mrTd.some((m) => m.toLowerCase() === toHex(quote.body.mrTd))) {
    throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', 'the MRTD is not one the reference values allow');
  }
  const policy: TdxPolicy = {
    rtmrs: [ref.rtmr0, ref.rtmr1, ref.rtmr2, ref.rtmr3],
    ...(ref.mrConfigId !== undefined ? { mrConfigId: ref.mrConfigId } : {}),
    ...(ref.mrOwner !== undefined ? { mrOwner: ref.mrOwner } : {}),
    allowDebug: ref.allowDebug ?? false,
    acceptedTcbStatuses: ref.acceptedTcbStatuses ?? DEFAULT_ACCEPTED_TCB_STATUSES,
  };
  const facts = validateTdxFacts(tdxFacts(verified), policy);
  // The path verifyQuote validated (with CRLs), again without them (memoized): which root it ended at.
  const [pckLeaf, ...pckRest] = quote.pckCertChainDer;
  const { root } = await validateCertificatePath({ leaf: pckLeaf, intermediates: pckRest, trustedRoots, at });
  return {
    platform: 'tdx',
    measurement: quote.body.mrTd,
    reportData: quote.body.reportData,
    debug: isDebugTd(facts.tdAttributes),
    version: quote.header.version,
    chipId: verified.pck.ppid,
    tdx: facts,
    root: { subject: root.subject, fingerprintSha256: await certificateFingerprint(root) },
  };
}

/** Reference values for NVIDIA H100 GPU evidence (a manifest's `gpus['nvidia-h100']`). */
export interface NvidiaGpuReference {
  trustedRoots: readonly string[]; // PEM
  /** Measurement index (as a decimal string) -> allowed values, hex. */
  measurements: Readonly<Record<string, readonly string[]>>;
  allowUnlistedIndices?: boolean;
  driverVersions?: readonly string[];
  minDriverVersion?: string;
  vbiosVersions?: readonly string[];
}

export interface GpuReferences {
  'nvidia-h100'?: NvidiaGpuReference;
}

/** What verified GPU evidence states, in values a registry can keep and show. */
export interface GpuEvidenceFacts {
  kind: GpuEvidence['kind'];
  driverVersion?: string;
  vbiosVersion?: string;
  measurementCount: number;
  /** SHA-256 (hex) over the deterministic CBOR of the [index, value] pairs in index order: one value to compare GPUs by. */
  measurementsSha256: string;
  /** The attestation certificate's firmware ID (hex), when it has one. */
  fwid?: string;
  /** The trusted root the device chain ended at. */
  root: { subject: string; fingerprintSha256: string };
}

/**
 * Verify GPU evidence against the reference values for its kind: the device chain to one of the
 * reference's roots at `at`, the SPDM signature, the verifier's `expectedNonce` (32 bytes), the FWID
 * binding, then the measurements, driver and VBIOS versions.
 */
export async function verifyGpuEvidenceAgainstReference(
  evidence: GpuEvidence,
  references: GpuReferences,
  at: Date,
  expectedNonce: Uint8Array,
): Promise<GpuEvidenceFacts> {
  const ref = references[evidence.kind];
  if (!ref) throw new ObscuraError('ERR_POLICY_VIOLATION', `no reference values admit ${evidence.kind} GPU evidence`);
  const policy = nvidiaGpuPolicy({
    measurements: ref.measurements,
    ...(ref.allowUnlistedIndices !== undefined ? { allowUnlistedIndices: ref.allowUnlistedIndices } : {}),
    ...(ref.driverVersions !== undefined ? { driverVersions: ref.driverVersions } : {}),
    ...(ref.minDriverVersion !== undefined ? { minDriverVersion: ref.minDriverVersion } : {}),
    ...(ref.vbiosVersions !== undefined ? { vbiosVersions: ref.vbiosVersions } : {}),
  });
  const spdm = parseNvidiaSpdmEvidence(evidence.spdm);
  const chain = await verifyNvidiaSpdmEvidence(spdm, { certChain: evidence.certChain, trustedRoots: ref.trustedRoots, at, expectedNonce });
  const facts = nvidiaGpuFacts(spdm);
  validateNvidiaGpuFacts(facts, policy);
  const blocks = [...spdm.response.blocks].sort((a, b) => a.index - b.index).map((b) => [b.index, b.value]);
  const fwid = certificateFwid(chain.leaf);
  const root = chain.path[chain.path.length - 1];
  return {
    kind: evidence.kind,
    ...(facts.opaque.driverVersion !== undefined ? { driverVersion: facts.opaque.driverVersion } : {}),
    ...(facts.opaque.vbiosVersion !== undefined ? { vbiosVersion: facts.opaque.vbiosVersion } : {}),
    measurementCount: blocks.length,
    measurementsSha256: toHex(await sha256(encodeDeterministic(blocks))),
    ...(fwid ? { fwid: toHex(fwid) } : {}),
    root: { subject: root.subject, fingerprintSha256: await certificateFingerprint(root) },
  };
}
