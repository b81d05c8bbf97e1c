/**
 * The manifest: a plain versioned document saying what the attestation service admits. Validated with
 * zod; every problem is reported with its JSON path (see validate-manifest.ts).
 */
import { z } from 'zod';
import { TDX_TCB_STATUSES, type TdxTcbStatus } from '../attestation/tdx/tcb-status.ts';

const hex = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as lowercase hex`);

export const SnpTcbSchema = z.strictObject({
  bootloader: z.number().int().min(0).max(255),
  tee: z.number().int().min(0).max(255),
  snp: z.number().int().min(0).max(255),
  microcode: z.number().int().min(0).max(255),
});

export const SevSnpReferenceSchema = z.strictObject({
  /** PEM of the ARK(s) this platform's evidence must chain to: AMD's, or the local simulated root. */
  trustedRoots: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
  /** Allowed launch measurements (48 bytes each). */
  measurements: z.array(hex(48)).min(1),
  minTcb: SnpTcbSchema.optional(),
  allowDebug: z.boolean().default(false),
  allowMigrationAgent: z.boolean().default(false),
  allowSmt: z.boolean().default(true),
});

/** The TCB statuses a TDX reference may accept (Intel's, as tdx/tcb-status.ts evaluates them). */
const TdxTcbStatusSchema = z.enum(TDX_TCB_STATUSES as unknown as [TdxTcbStatus, ...TdxTcbStatus[]]);

/**
 * Reference values for Intel TDX evidence, in the shape of shared/attestation/tdx/policy.ts: a quote
 * whose PCK chain and collateral (TCB info, QE identity, CRLs) lead to one of `trustedRoots`, with one
 * of these MRTDs, and each listed RTMR / MRCONFIGID / MROWNER among its values (absent: not checked).
 */
export const TdxReferenceSchema = z.strictObject({
  /** PEM of the Intel SGX Root CA(s) the PCK chain and the TCB Signing chain must end at (or the local simulated root). */
  trustedRoots: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
  /** Allowed MRTD values (48 bytes each): the TD's build-time measurement. */
  mrTd: z.array(hex(48)).min(1),
  rtmr0: z.array(hex(48)).min(1).optional(),
  rtmr1: z.array(hex(48)).min(1).optional(),
  rtmr2: z.array(hex(48)).min(1).optional(),
  rtmr3: z.array(hex(48)).min(1).optional(),
  mrConfigId: z.array(hex(48)).min(1).optional(),
  mrOwner: z.array(hex(48)).min(1).optional(),
  /** The TCB statuses admitted (Intel's TCB info decides a platform's); only UpToDate by default. */
  acceptedTcbStatuses: z.array(TdxTcbStatusSchema).min(1).default(['UpToDate']),
  /** A debug TD's memory is open to the host. */
  allowDebug: z.boolean().default(false),
});

/** SPDM measurement index 1..254 as a JSON key (0 and 255 are GET_MEASUREMENTS operations, not indices). */
const GpuMeasurementIndex = z.string().regex(/^(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-4])$/, 'expected a measurement index 1..254');
const DriverVersion = z.string().regex(/^\d+(?:\.\d+)*$/, 'expected a dotted decimal driver version, e.g. 550.90.07');

/**
 * Reference values for NVIDIA H100 GPU evidence (SPDM measurements signed under the device chain), in
 * the shape of shared/attestation/nvidia/policy.ts: a registering worker's GPU evidence must chain to
 * one of `trustedRoots` (NVIDIA's, or the local simulated root) and carry these values.
 */
export const NvidiaGpuReferenceSchema = z.strictObject({
  /** PEM of the NVIDIA root(s) ("NVIDIA Device Identity CA") the device chain must end at. */
  trustedRoots: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
  /** Measurement index -> the values allowed there (lowercase hex; SHA-384 digests are 48 bytes). */
  measurements: z.record(GpuMeasurementIndex, z.array(z.string().regex(/^(?:[0-9a-f]{2})+$/, 'expected lowercase hex')).min(1)),
  /** By default every index the GPU reports must be listed: an unlisted one would be unchecked firmware. */
  allowUnlistedIndices: z.boolean().default(false),
  /** Exact driver versions allowed. */
  driverVersions: z.array(DriverVersion).min(1).optional(),
  /** Lowest driver version allowed, compared numerically part by part. */
  minDriverVersion: DriverVersion.optional(),
  /** Exact VBIOS versions allowed, as nvidia-smi prints them (e.g. 96.00.9F.00.01). */
  vbiosVersions: z.array(z.string().regex(/^[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2}){4}$/, 'expected a VBIOS version like 96.00.9F.00.01')).min(1).optional(),
  /** Whether a worker must present evidence of at least one such GPU to be admitted. */
  required: z.boolean().default(true),
});

/** GPU reference values per GPU kind; a kind absent here is not part of admission. */
export const GpuReferencesSchema = z.strictObject({
  'nvidia-h100': NvidiaGpuReferenceSchema.optional(),
});

export const SandboxSettingsSchema = z.strictObject({
  network: z.literal('none'),
  memoryLimitBytes: z.number().int().positive(),
  pidsLimit: z.number().int().positive(),
  cpuQuotaPercent: z.number().int().min(1).max(100_00),
  scratchBytes: z.number().int().positive(),
});

export const AiCodeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/),
  /** sha256 over the AI code's image (OCI manifest digest, or the directory digest for local use). */
  imageDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  command: z.array(z.string()).min(1),
  sandbox: SandboxSettingsSchema,
});

export const ModelSchema = z.strictObject({
  name: z.string().min(1),
  weightsDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  aiCode: z.array(z.string()).min(1),
});

export const OwnerSchema = z.strictObject({
  id: z.string().min(1),
  /** ECDSA P-256 public key, JWK. */
  publicKeyJwk: z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string(), y: z.string() }),
});

export const LimitsSchema = z.strictObject({
  secretLifetimeMs: z.number().int().positive(),
  bundleMaxAgeMs: z.number().int().positive(),
  replayWindowMs: z.number().int().positive(),
  workerCertLifetimeMs: z.number().int().positive(),
});

/**
 * The attestation service images that may hold the service's sealed state: a service hands its state
 * only to one whose evidence shows one of these measurements, checked under the platform's roots and
 * policy (`platforms`), and the receiver takes it only from one of them (attestation-service/state-handoff.ts).
 */
export const AttestationServiceReferenceSchema = z.strictObject({
  measurements: z.array(hex(48)).min(1),
});

export const ManifestSchema = z.strictObject({
  version: z.literal(1),
  platforms: z.strictObject({
    'sev-snp': SevSnpReferenceSchema.optional(),
    tdx: TdxReferenceSchema.optional(),
  }),
  /** GPU evidence a worker must (or may) present at registration, besides its CPU evidence. Absent: none is checked. */
  gpus: GpuReferencesSchema.optional(),
  aiCode: z.array(AiCodeSchema).min(1),
  models: z.array(ModelSchema).default([]),
  owners: z.array(OwnerSchema).min(1),
  limits: LimitsSchema,
  /** Absent: the state cannot move to another machine. */
  attestationService: AttestationServiceReferenceSchema.optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestInput = z.input<typeof ManifestSchema>;
export type SevSnpReference = z.infer<typeof SevSnpReferenceSchema>;
export type TdxReference = z.infer<typeof TdxReferenceSchema>;
export type NvidiaGpuReference = z.infer<typeof NvidiaGpuReferenceSchema>;
export type GpuReferences = z.infer<typeof GpuReferencesSchema>;
export type AttestationServiceReference = z.infer<typeof AttestationServiceReferenceSchema>;
export type AiCodeEntry = z.infer<typeof AiCodeSchema>;
export type SandboxSettings = z.infer<typeof SandboxSettingsSchema>;
