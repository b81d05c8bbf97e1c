/**
 * Verifying an attestation bundle: evidence against roots the VERIFIER supplies (never the bundle's),
 * report_data = SHA-512(core), protocol version, age and expiry against the verifier's clock, the
 * manifest chain's links and head, and the manifest's digest. Used by clients (with measurements) and
 * by the edge (roots and age only).
 */
import { equalBytes } from '../bytes.ts';
import { decodeStrict } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { verifyEvidenceAgainstReference, type EvidenceFacts, type SnpReference } from '../attestation/verify-evidence.ts';
import { GENESIS_PREV, manifestDigest, verifyChainLinks } from '../manifest/chain.ts';
import type { Manifest } from '../manifest/schema.ts';
import { parseManifest } from '../manifest/validate-manifest.ts';
import { coreReportData, parseAttestedCore, type AttestedCore } from './attested-core.ts';
import { parseBundle, type AttestationBundle } from './bundle.ts';
import { PROTOCOL_VERSION } from './constants.ts';

/** Clock skew tolerated between the service and the verifier, for issuedAt in the future. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface BundleVerificationPolicy {
  trustedRootsPem: string | readonly string[];
  /** The service's allowed launch measurements; omitted by the edge, which checks roots and age only. */
  serviceMeasurements?: readonly string[];
  allowDebug?: boolean;
  minTcb?: SnpReference['minTcb'];
  now: number;
  maxAgeMs: number;
  minProtocolVersion?: number;
  expectedNonce?: Uint8Array;
}

export interface VerifiedBundle {
  bundle: AttestationBundle;
  core: AttestedCore;
  facts: EvidenceFacts;
  manifest?: Manifest; // absent only for a service that has no manifest yet (before `manifest set`)
  manifestHead: Uint8Array;
}

export async function verifyBundle(bytes: Uint8Array, policy: BundleVerificationPolicy): Promise<VerifiedBundle> {
  const bundle = parseBundle(bytes);
  const core = parseAttestedCore(bundle.core);
  const roots = typeof policy.trustedRootsPem === 'string' ? [policy.trustedRootsPem] : policy.trustedRootsPem;
  const facts = await verifyEvidenceAgainstReference(
    bundle.evidence,
    { 'sev-snp': { trustedRoots: roots, measurements: policy.serviceMeasurements, allowDebug: policy.allowDebug ?? false, minTcb: policy.minTcb } },
    new Date(policy.now),
  );
  if (!equalBytes(facts.reportData, await coreReportData(bundle.core))) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', "the evidence's report data does not bind this bundle's core");
  }
  if (core.v < (policy.minProtocolVersion ?? PROTOCOL_VERSION)) {
    throw new ObscuraError('ERR_DOWNGRADE', `the service speaks protocol ${core.v}; this client requires ${policy.minProtocolVersion ?? PROTOCOL_VERSION}`);
  }
  if (core.issuedAt > policy.now + MAX_CLOCK_SKEW_MS) throw new ObscuraError('ERR_NOT_YET_VALID', 'the bundle was issued in the future: check the clocks');
  if (core.expiresAt <= policy.now) throw new ObscuraError('ERR_EXPIRED', 'the bundle has expired');
  if (policy.now - core.issuedAt > policy.maxAgeMs) throw new ObscuraError('ERR_EXPIRED', `the bundle is older than ${policy.maxAgeMs} ms`);
  if (policy.expectedNonce && !(core.nonce && equalBytes(core.nonce, policy.expectedNonce))) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the bundle does not carry the nonce this client asked for');
  }
  if (bundle.chain.length === 0) {
    // A fresh service: no manifest yet. Only an admin setting the first one has a use for this.
    if (bundle.manifest || !equalBytes(core.manifestHead, GENESIS_PREV)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'a bundle without a manifest chain must attest the empty head');
    return { bundle, core, facts, manifestHead: core.manifestHead };
  }
  const head = await verifyChainLinks(bundle.chain);
  if (!equalBytes(head, core.manifestHead)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the manifest chain does not end at the attested head');
  if (!bundle.manifest) throw new ObscuraError('ERR_MALFORMED', 'the bundle has a manifest chain but no manifest');
  const manifest = parseManifest(decodeStrict(bundle.manifest, 'manifest'));
  const last = bundle.chain[bundle.chain.length - 1];
  if (!equalBytes(await manifestDigest(manifest), last.manifestSha256)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the manifest does not match the digest at the head of its chain');
  }
  return { bundle, core, facts, manifest, manifestHead: head };
}
