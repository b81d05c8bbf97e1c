/**
 * The attestation bundle (CBOR): the service's evidence, the core it binds, the current manifest and
 * the manifest chain. Parsing only checks shape; trust comes from verify-bundle in the client/edge.
 */
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { parseEvidence, type Evidence, encodeEvidence } from '../attestation/evidence.ts';
import { parseChainEntry, type ManifestChainEntry } from '../manifest/chain.ts';
import { PROTOCOL_VERSION } from './constants.ts';

export interface AttestationBundle {
  v: number;
  core: Uint8Array; // exact bytes of the attested core (hashed into report_data)
  evidence: Evidence;
  manifest?: Uint8Array; // deterministic CBOR of the current manifest; absent before the first is set
  chain: ManifestChainEntry[]; // empty before the first manifest is set
}

export function encodeBundle(b: AttestationBundle): Uint8Array {
  return encodeDeterministic({
    v: b.v,
    core: b.core,
    evidence: encodeEvidence(b.evidence),
    ...(b.manifest ? { manifest: b.manifest } : {}),
    chain: b.chain.map((e) => ({ ...e })),
  });
}

export function parseBundle(bytes: Uint8Array): AttestationBundle {
  const m = asRecord(decodeStrict(bytes, 'attestation bundle'), 'attestation bundle');
  const v = fieldInt(m, 'v', 'attestation bundle');
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `attestation bundle version ${v} is not supported`);
  if (!Array.isArray(m.chain)) throw new ObscuraError('ERR_MALFORMED', 'attestation bundle.chain must be an array');
  return {
    v,
    core: fieldBytes(m, 'core', 'attestation bundle'),
    evidence: parseEvidence(m.evidence, 'attestation bundle.evidence'),
    ...(m.manifest === undefined ? {} : { manifest: fieldBytes(m, 'manifest', 'attestation bundle') }),
    chain: m.chain.map((e, i) => parseChainEntry(e, `attestation bundle.chain[${i}]`)),
  };
}
