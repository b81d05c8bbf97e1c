/**
 * The manifest: a plain versioned document saying what the attestation service admits. Validated with
 * zod; every problem is reported with its JSON path (see validate-manifest.ts).
 */
import { z } from 'zod';

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

export const ManifestSchema = z.strictObject({
  version: z.literal(1),
  platforms: z.strictObject({
    'sev-snp': SevSnpReferenceSchema.optional(),
  }),
  aiCode: z.array(AiCodeSchema).min(1),
  models: z.array(ModelSchema).default([]),
  owners: z.array(OwnerSchema).min(1),
  limits: LimitsSchema,
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestInput = z.input<typeof ManifestSchema>;
export type SevSnpReference = z.infer<typeof SevSnpReferenceSchema>;
export type AiCodeEntry = z.infer<typeof AiCodeSchema>;
export type SandboxSettings = z.infer<typeof SandboxSettingsSchema>;
