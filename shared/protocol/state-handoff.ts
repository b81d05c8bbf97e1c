/**
 * Moving the attestation service's state to new hardware, from one attested service (the source, A)
 * to another (the target, B), with no human able to read it on the way:
 *   1. B verifies A's bundle (its own nonce) and pins the TLS key it attests;
 *   2. B asks A for a one-time challenge;
 *   3. B makes an ephemeral HPKE key pair and evidence whose report_data binds the challenge, that
 *      key, B's TLS key, where B will serve and the digest of the A core B verified (handoffReportData);
 *   4. A checks B's evidence against its manifest (platform roots and policy, B's measurement among the
 *      manifest's attestation service measurements) and HPKE-seals its state to B's key, with info and
 *      aad binding A's core digest, B's evidence digest and A's manifest chain head.
 * Pinned by a golden test (state-handoff.test.ts): changing these bytes breaks every deployed service.
 */
import { equalBytes, sha256, sha512 } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { encodeEvidence, parseEvidence, type Evidence } from '../attestation/evidence.ts';
import { PROTOCOL_VERSION } from './constants.ts';
import { openBound, sealBound } from './hpke-suites.ts';

/** What B's evidence is for: no other evidence (bundles, worker registrations) can pass as it. */
export const STATE_HANDOFF_PURPOSE = 'obscura/v1 state handoff';
/** HPKE label of the sealed state (its info is this label and SHA-256 of the header). */
export const LABEL_STATE_HANDOFF = 'obscura/v1 state handoff to service';
export const STATE_HANDOFF_CHALLENGE_BYTES = 32;
export const STATE_HANDOFF_CONTENT_TYPE = 'application/obscura-state-handoff+cbor';
/** The longest endpoint URL a target may name (it is echoed in the source's refusals). */
export const MAX_HANDOFF_ENDPOINT_CHARS = 512;

/** What the target's evidence binds (report_data = SHA-512 of its deterministic CBOR with the purpose). */
export interface StateHandoffBinding {
  challenge: Uint8Array; // the source's one-time challenge
  sourceCoreSha256: Uint8Array; // digest of the source's attested core the target verified
  hpkeSuite: string;
  hpkePublicKey: Uint8Array; // the target's ephemeral key: the state is sealed to it
  tlsKeySha256: Uint8Array; // SHA-256 of the target's TLS SubjectPublicKeyInfo
  endpoint: string; // where the target will serve (named in the source's refusals afterwards)
}

export interface StateHandoffRequest extends StateHandoffBinding {
  v: number;
  evidence: Evidence;
}

/** Authenticated, readable part of the sealed state: the HPKE aad, and (hashed) its info. */
export interface StateHandoffHeader {
  v: number;
  suite: string;
  sourceCoreSha256: Uint8Array;
  targetEvidenceSha256: Uint8Array;
  manifestHead: Uint8Array; // the source's chain head when it sealed: the state's chain must end there
  handedOffAt: number; // ms since epoch, the source's clock
}

export interface SealedStateHandoff extends StateHandoffHeader {
  enc: Uint8Array;
  ct: Uint8Array;
}

function bindingValue(b: StateHandoffBinding): Record<string, unknown> {
  return {
    challenge: b.challenge,
    sourceCoreSha256: b.sourceCoreSha256,
    hpkeSuite: b.hpkeSuite,
    hpkePublicKey: b.hpkePublicKey,
    tlsKeySha256: b.tlsKeySha256,
    endpoint: b.endpoint,
  };
}

export function stateHandoffReportData(b: StateHandoffBinding): Promise<Uint8Array> {
  return sha512(encodeDeterministic({ purpose: STATE_HANDOFF_PURPOSE, ...bindingValue(b) }));
}

/** The digest the sealed state binds the target's evidence by. */
export function evidenceDigest(evidence: Evidence): Promise<Uint8Array> {
  return sha256(encodeDeterministic(encodeEvidence(evidence)));
}

export function encodeStateHandoffRequest(r: StateHandoffRequest): Uint8Array {
  return encodeDeterministic({ v: r.v, evidence: encodeEvidence(r.evidence), ...bindingValue(r) });
}

export function parseStateHandoffRequest(bytes: Uint8Array): StateHandoffRequest {
  const what = 'state handoff request';
  const m = asRecord(decodeStrict(bytes, what), what);
  const v = fieldInt(m, 'v', what);
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `${what} version ${v} is not supported`);
  const endpoint = fieldString(m, 'endpoint', what);
  if (endpoint.length > MAX_HANDOFF_ENDPOINT_CHARS || !/^https:\/\/[^\s]+$/.test(endpoint)) {
    throw new ObscuraError('ERR_MALFORMED', `${what}.endpoint must be an https URL of at most ${MAX_HANDOFF_ENDPOINT_CHARS} characters`);
  }
  return {
    v,
    evidence: parseEvidence(m.evidence, `${what}.evidence`),
    challenge: fieldBytes(m, 'challenge', what, STATE_HANDOFF_CHALLENGE_BYTES),
    sourceCoreSha256: fieldBytes(m, 'sourceCoreSha256', what, 32),
    hpkeSuite: fieldString(m, 'hpkeSuite', what),
    hpkePublicKey: fieldBytes(m, 'hpkePublicKey', what),
    tlsKeySha256: fieldBytes(m, 'tlsKeySha256', what, 32),
    endpoint,
  };
}

export function encodeStateHandoffHeader(h: StateHandoffHeader): Uint8Array {
  return encodeDeterministic({
    v: h.v,
    suite: h.suite,
    sourceCoreSha256: h.sourceCoreSha256,
    targetEvidenceSha256: h.targetEvidenceSha256,
    manifestHead: h.manifestHead,
    handedOffAt: h.handedOffAt,
  });
}

/** Seal `state` (the service's encoded state) to the target's ephemeral key. */
export async function sealStateHandoff(input: { header: StateHandoffHeader; recipientPublicKey: Uint8Array; state: Uint8Array }): Promise<SealedStateHandoff> {
  const aad = encodeStateHandoffHeader(input.header);
  const sealed = await sealBound({ suite: input.header.suite, recipientPublicKey: input.recipientPublicKey, label: LABEL_STATE_HANDOFF, context: await sha256(aad), plaintext: input.state, aad });
  return { ...input.header, ...sealed };
}

/**
 * Open a sealed state after checking its header names what the target expects (the core it verified,
 * its own evidence); a state sealed to another key, for another exchange, or changed, does not open.
 */
export async function openStateHandoff(input: {
  sealed: SealedStateHandoff;
  recipientKey: CryptoKey;
  expected: { sourceCoreSha256: Uint8Array; targetEvidenceSha256: Uint8Array; suite: string };
}): Promise<Uint8Array> {
  const { enc, ct, ...header } = input.sealed;
  const e = input.expected;
  if (!equalBytes(header.sourceCoreSha256, e.sourceCoreSha256) || !equalBytes(header.targetEvidenceSha256, e.targetEvidenceSha256) || header.suite !== e.suite) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the sealed state names another exchange than this one (source core, target evidence or suite)');
  }
  const aad = encodeStateHandoffHeader(header);
  return openBound({ suite: header.suite, recipientKey: input.recipientKey, label: LABEL_STATE_HANDOFF, context: await sha256(aad), enc, ct, aad, what: 'the sealed service state' });
}

export function encodeSealedStateHandoff(s: SealedStateHandoff): Uint8Array {
  return encodeDeterministic({ ...s });
}

export function parseSealedStateHandoff(bytes: Uint8Array): SealedStateHandoff {
  const what = 'sealed state handoff';
  const m = asRecord(decodeStrict(bytes, what), what);
  const v = fieldInt(m, 'v', what);
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `${what} version ${v} is not supported`);
  return {
    v,
    suite: fieldString(m, 'suite', what),
    sourceCoreSha256: fieldBytes(m, 'sourceCoreSha256', what, 32),
    targetEvidenceSha256: fieldBytes(m, 'targetEvidenceSha256', what, 32),
    manifestHead: fieldBytes(m, 'manifestHead', what, 32),
    handedOffAt: fieldInt(m, 'handedOffAt', what),
    enc: fieldBytes(m, 'enc', what),
    ct: fieldBytes(m, 'ct', what),
  };
}
