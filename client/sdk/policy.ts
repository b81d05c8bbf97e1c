/**
 * The client's policy: the roots and the attestation service measurement it trusts. It ships with the
 * SDK (or, for the local deployment, `npm start` writes one); a bundle can never widen it.
 */
import { z } from 'zod';
import { ObscuraError } from '../../shared/errors.ts';
import type { BundleVerificationPolicy } from '../../shared/protocol/verify-bundle.ts';

export const ClientPolicySchema = z.strictObject({
  version: z.literal(1),
  service: z.strictObject({
    platform: z.literal('sev-snp'),
    trustedRoots: z.array(z.string().includes('BEGIN CERTIFICATE')).min(1),
    measurements: z.array(z.string().regex(/^[0-9a-f]{96}$/)).min(1),
    allowDebug: z.boolean().default(false),
    minTcb: z.strictObject({ bootloader: z.number(), tee: z.number(), snp: z.number(), microcode: z.number() }).optional(),
  }),
  maxBundleAgeMs: z.number().int().positive().default(10 * 60_000),
  minProtocolVersion: z.number().int().positive().default(1),
  /** What to do when the service's manifest history does not extend what this client saw before. */
  onManifestFork: z.enum(['refuse', 'warn']).default('refuse'),
  /**
   * Whether the current inference secret may follow a manifest update (the client signs an allowance
   * for it) when the update admits nothing the previous manifest did not; otherwise a new secret is
   * exchanged under the new manifest.
   */
  secretFollowsManifest: z.enum(['never', 'if-nothing-new-is-admitted']).default('if-nothing-new-is-admitted'),
  /** Lifetime this client asks for its inference secrets, ms. */
  secretLifetimeMs: z.number().int().positive().default(30 * 60_000),
});

export type ClientPolicy = z.infer<typeof ClientPolicySchema>;
export type ClientPolicyInput = z.input<typeof ClientPolicySchema>;

export function parseClientPolicy(doc: unknown): ClientPolicy {
  const r = ClientPolicySchema.safeParse(doc);
  if (!r.success) {
    throw new ObscuraError('ERR_USAGE', `the client policy is not valid: ${r.error.issues.map((i) => `$.${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return r.data;
}

/** What verifyBundle checks for a client with this policy, at `now` (optionally for a fresh nonce). */
export function bundleVerificationOptions(policy: ClientPolicy, now: number, expectedNonce?: Uint8Array): BundleVerificationPolicy {
  return {
    trustedRootsPem: policy.service.trustedRoots,
    serviceMeasurements: policy.service.measurements,
    allowDebug: policy.service.allowDebug,
    minTcb: policy.service.minTcb,
    now,
    maxAgeMs: policy.maxBundleAgeMs,
    minProtocolVersion: policy.minProtocolVersion,
    ...(expectedNonce ? { expectedNonce } : {}),
  };
}
