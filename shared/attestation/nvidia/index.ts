/**
 * NVIDIA H100 GPU evidence (SPDM 1.1 MEASUREMENTS signed by the GPU's attestation key): parse, verify
 * against injected roots at an injected time, then validate against a policy when one is given.
 */
import { parseNvidiaSpdmEvidence } from './spdm.ts';
import { verifyNvidiaSpdmEvidence } from './verify.ts';
import { nvidiaGpuFacts, type NvidiaGpuFacts } from './facts.ts';
import { validateNvidiaGpuFacts } from './validate.ts';
import type { CertificateInput } from './certificate-chain.ts';
import type { NvidiaGpuPolicy } from './policy.ts';

export * from './spdm.ts';
export * from './opaque-data.ts';
export * from './certificate-chain.ts';
export * from './fwid.ts';
export * from './verify.ts';
export * from './facts.ts';
export * from './policy.ts';
export * from './validate.ts';

export interface VerifyNvidiaGpuEvidenceOptions {
  /** The SPDM request || response, as bytes or hex. */
  readonly evidence: Uint8Array | string;
  /** The device certificate chain, PEM, leaf first (as the driver returns it). */
  readonly certChainPem: string;
  /** NVIDIA roots from the caller's own policy (e.g. "NVIDIA Device Identity CA"). */
  readonly trustedRoots: readonly CertificateInput[];
  readonly at: Date;
  readonly expectedNonce?: Uint8Array | string;
  readonly policy?: NvidiaGpuPolicy;
}

export async function verifyNvidiaGpuEvidence(options: VerifyNvidiaGpuEvidenceOptions): Promise<NvidiaGpuFacts> {
  const evidence = parseNvidiaSpdmEvidence(options.evidence);
  await verifyNvidiaSpdmEvidence(evidence, {
    certChain: options.certChainPem,
    trustedRoots: options.trustedRoots,
    at: options.at,
    expectedNonce: options.expectedNonce,
  });
  const facts = nvidiaGpuFacts(evidence);
  if (options.policy) validateNvidiaGpuFacts(facts, options.policy);
  return facts;
}
