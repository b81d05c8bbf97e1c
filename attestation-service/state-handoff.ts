/**
 * Moving the service's sealed state to new hardware (shared/protocol/state-handoff.ts has the wire
 * format). Its sealing key never leaves the TEE and no human-held key opens the state: the state goes
 * only from one attested service to another whose measurement the manifest lists
 * (`attestationService.measurements`), HPKE-sealed to a key the receiver's hardware vouched for.
 *
 * The source (StateHandoffSource) hands over a snapshot of its whole state, not a key: the receiver
 * then needs nothing from the source's disk, seals the state under its own TEE key at once, and no key
 * that opens the source's file ever exists outside the source's TEE. Before the reply leaves, the
 * source records durably (in its sealed state) that it handed off; from then on it refuses every call
 * that changes or releases what it holds, naming the new service, so two live copies cannot fork the
 * manifest chain or disagree on revocations.
 *
 * The receiver (receiveStateHandoff) verifies the source's bundle under roots its operator gives it,
 * pins the source's attested TLS key for the rest of the exchange, and takes the state only if its
 * chain verifies, ends where the source said, extends what the source attested, and lists both the
 * source's and its own measurement.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Agent, request } from 'undici';
import { bufferOf, equalBytes, fromBase64Url, randomBytes, sha256, toBase64Url, toHex } from '../shared/bytes.ts';
import { encodeDeterministic } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { verifyEvidenceAgainstReference, type EvidenceFacts } from '../shared/attestation/verify-evidence.ts';
import { extendsSeenChain } from '../shared/manifest/chain.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { certificateSpki } from '../shared/pki/issue-certificate.ts';
import { coreDigest } from '../shared/protocol/attested-core.ts';
import { BUNDLE_CONTENT_TYPE, PROTOCOL_VERSION } from '../shared/protocol/constants.ts';
import { checkHpkePublicKey, generateHpkeKeyPair, HPKE_SUITES_BY_PREFERENCE, isHpkeSuiteName, type HpkeKeyPair, type HpkeSuiteName } from '../shared/protocol/hpke-suites.ts';
import {
  encodeSealedStateHandoff,
  encodeStateHandoffRequest,
  evidenceDigest,
  openStateHandoff,
  parseSealedStateHandoff,
  parseStateHandoffRequest,
  sealStateHandoff,
  STATE_HANDOFF_CHALLENGE_BYTES,
  STATE_HANDOFF_CONTENT_TYPE,
  stateHandoffReportData,
  type SealedStateHandoff,
  type StateHandoffRequest,
} from '../shared/protocol/state-handoff.ts';
import { verifyBundle, type VerifiedBundle } from '../shared/protocol/verify-bundle.ts';
import { fromWireErrorBytes } from '../shared/protocol/wire-error.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import { ManifestStore } from './manifest-store.ts';
import type { ServiceContext } from './server.ts';
import { decodeServiceState, encodeServiceState, type HandedOffRecord, type ServiceStateSnapshot } from './service-state.ts';

export const HANDOFF_CHALLENGE_TTL_MS = 60_000;
const MAX_OPEN_HANDOFF_CHALLENGES = 64;
/** How long a handoff waits for state changes already under way before it gives up (and changes nothing). */
export const HANDOFF_DRAIN_TIMEOUT_MS = 10_000;
/** The source's bundle is made for the receiver's nonce, so it is fresh; this bounds clock skew. */
const SOURCE_BUNDLE_MAX_AGE_MS = 5 * 60_000;
/** A handed-over state is at most this large (it carries every held secret and registered worker). */
const MAX_HANDED_OVER_STATE_BYTES = 256 * 1024 * 1024;
const RECEIVED_STATE = 'the handed-over state';

/** What a service that handed off says to every call that would change or release what it holds. */
export class HandedOffError extends ObscuraError {
  constructor(readonly record: HandedOffRecord) {
    super(
      'ERR_SERVICE_MOVED',
      `this attestation service handed its state to ${record.to} (measurement ${record.measurement.slice(0, 16)}…) at ${new Date(record.at).toISOString()}: ` +
        `it changes and releases nothing any more; send this to ${record.to}`,
    );
  }
}

/** The references B's evidence must meet: the platform's roots and policy, the AS measurements. */
function serviceReference(manifest: Manifest | undefined) {
  if (!manifest) throw new ObscuraError('ERR_POLICY_VIOLATION', 'no manifest is set, so none says which attestation services may hold the state');
  const allowed = manifest.attestationService?.measurements;
  if (!allowed) throw new ObscuraError('ERR_POLICY_VIOLATION', 'the manifest lists no attestation service measurements (attestationService): the state cannot move');
  const platform = manifest.platforms['sev-snp'];
  if (!platform) throw new ObscuraError('ERR_POLICY_VIOLATION', 'the manifest has no sev-snp platform reference to check attestation services under');
  return { 'sev-snp': { ...platform, measurements: allowed } };
}

/**
 * The source side, one per running service: one-time challenges, the guard every state-changing call
 * passes (`admit`), and the handoff itself.
 */
export class StateHandoffSource {
  private readonly challenges = new Map<string, number>(); // base64url -> expiry
  private handedOff?: HandedOffRecord;
  private freezing = false;
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly opts: {
      record?: HandedOffRecord; // from the sealed state: a service that handed off stays so
      snapshot: () => ServiceStateSnapshot;
      persist: () => Promise<void>; // makes the in-memory state (with the record) durable
      now: () => number;
      log: (event: Record<string, unknown>) => void;
    },
  ) {
    this.handedOff = opts.record;
  }

  get record(): HandedOffRecord | undefined {
    return this.handedOff;
  }

  /**
   * Admit a call that changes or releases state: refused once handed off, and while a handoff is being
   * made. Call the returned function when the call is done (a handoff waits for those under way).
   */
  admit(): () => void {
    if (this.handedOff) throw new HandedOffError(this.handedOff);
    if (this.freezing) throw new ObscuraError('ERR_UPSTREAM', 'the state is being handed to another attestation service: try again shortly');
    this.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.inFlight === 0) for (const w of this.waiters.splice(0)) w();
    };
  }

  status(): Record<string, unknown> {
    const r = this.handedOff;
    return r ? { handedOff: true, to: r.to, measurement: r.measurement, at: r.at, manifestHead: toHex(r.manifestHead) } : { handedOff: false };
  }

  challenge(): { challenge: string; expiresAt: number } {
    if (this.handedOff) throw new HandedOffError(this.handedOff);
    const now = this.opts.now();
    for (const [c, exp] of this.challenges) if (exp <= now) this.challenges.delete(c);
    if (this.challenges.size >= MAX_OPEN_HANDOFF_CHALLENGES) throw new ObscuraError('ERR_RATE_LIMITED', 'too many open handoff challenges; try again later');
    const challenge = toBase64Url(randomBytes(STATE_HANDOFF_CHALLENGE_BYTES));
    this.challenges.set(challenge, now + HANDOFF_CHALLENGE_TTL_MS);
    return { challenge, expiresAt: now + HANDOFF_CHALLENGE_TTL_MS };
  }

  /** Check a target's request and answer with the state sealed to it; on any refusal nothing changes. */
  async handOff(ctx: ServiceContext, body: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.handOffChecked(ctx, body);
    } catch (e) {
      this.opts.log({ event: 'handoff-refused', code: (e as ObscuraError).code ?? 'error', reason: (e as Error).message });
      throw e;
    }
  }

  private async handOffChecked(ctx: ServiceContext, body: Uint8Array): Promise<Uint8Array> {
    if (this.handedOff) throw new HandedOffError(this.handedOff);
    const req = parseStateHandoffRequest(body);
    // One-time: consumed whether or not the rest passes, so no evidence is good twice.
    const key = toBase64Url(req.challenge);
    const exp = this.challenges.get(key);
    this.challenges.delete(key);
    if (exp === undefined || exp <= this.opts.now()) throw new ObscuraError('ERR_REPLAY', 'the handoff challenge is unknown, used or expired: ask for a new one');
    const head = ctx.manifests.head;
    const facts = await verifyEvidenceAgainstReference(req.evidence, serviceReference(ctx.manifests.current), new Date(this.opts.now()));
    if (!equalBytes(facts.reportData, await stateHandoffReportData(req))) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the evidence does not bind this challenge, this key, this TLS key and this endpoint');
    }
    if (!ctx.issuer.issuedCore(toHex(req.sourceCoreSha256))) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the request names an attested core this service did not issue or that expired');
    }
    if (!isHpkeSuiteName(req.hpkeSuite)) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${req.hpkeSuite} is not supported`);
    await checkHpkePublicKey(req.hpkeSuite, req.hpkePublicKey);
    if (this.freezing) throw new ObscuraError('ERR_UPSTREAM', 'another handoff is under way');

    this.freezing = true;
    try {
      await this.drain();
      if (this.handedOff) throw new HandedOffError(this.handedOff);
      if (!equalBytes(head, ctx.manifests.head)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the manifest changed during the handoff: start again');
      const { handedOff: _never, ...state } = this.opts.snapshot();
      const targetEvidenceSha256 = await evidenceDigest(req.evidence);
      const at = this.opts.now();
      const sealed = await sealStateHandoff({
        header: { v: PROTOCOL_VERSION, suite: req.hpkeSuite, sourceCoreSha256: req.sourceCoreSha256, targetEvidenceSha256, manifestHead: head, handedOffAt: at },
        recipientPublicKey: req.hpkePublicKey,
        state: encodeServiceState(state),
      });
      // Durable before the state leaves: after a crash this service still knows it handed off.
      this.handedOff = { at, to: req.endpoint, measurement: toHex(facts.measurement), targetEvidenceSha256, manifestHead: head };
      try {
        await this.opts.persist();
      } catch (e) {
        this.handedOff = undefined;
        throw e;
      }
      this.opts.log({
        event: 'handoff-sent',
        to: req.endpoint,
        measurement: toHex(facts.measurement),
        chipId: toHex(facts.chipId),
        manifestHead: toHex(head),
        suite: req.hpkeSuite,
        workers: state.workers.workers.length,
        secrets: state.secrets.length,
        modelKeys: state.modelKeys.length,
      });
      return encodeSealedStateHandoff(sealed);
    } finally {
      this.freezing = false;
    }
  }

  private async drain(): Promise<void> {
    if (this.inFlight === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((r) => this.waiters.push(r));
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), HANDOFF_DRAIN_TIMEOUT_MS)));
    try {
      if ((await Promise.race([waited, timedOut])) === 'timeout') {
        throw new ObscuraError('ERR_UPSTREAM', `changes under way did not finish within ${HANDOFF_DRAIN_TIMEOUT_MS} ms: try the handoff again`);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---- the receiving side ----

const spkiSha256 = (raw: Buffer) => new Uint8Array(createHash('sha256').update(new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' })).digest());

export interface HandoffSource {
  url: string;
  verified: VerifiedBundle;
  facts: EvidenceFacts;
  coreSha256: Uint8Array;
  manifest: Manifest;
}

/**
 * The receiver's connection to the source: every request after the first goes over a TLS connection
 * whose key is the one the source's verified evidence attests.
 */
export class StateHandoffConnection {
  private pinned?: Uint8Array;
  private lastSeen?: Uint8Array;
  private readonly agent: Agent;

  private constructor(
    readonly url: string,
    tlsCaPem: string | undefined,
  ) {
    this.agent = new Agent({
      connect: {
        ...(tlsCaPem ? { ca: tlsCaPem } : {}),
        checkServerIdentity: (host: string, cert: PeerCertificate) => {
          const err = checkServerIdentity(host, cert);
          if (err) return err;
          const seen = spkiSha256(cert.raw);
          this.lastSeen = seen;
          if (this.pinned && !equalBytes(seen, this.pinned)) {
            return new ObscuraError('ERR_VALUE_MISMATCH', `the TLS key of ${this.url} is not the one its evidence attests`);
          }
          return undefined;
        },
      },
    });
  }

  /**
   * Verify the source: its bundle, made for a fresh nonce, under `trustedRootsPem`; its TLS key (then
   * pinned); its manifest, which must list its measurement among the attestation services, and its
   * evidence against that manifest's platform reference too.
   */
  static async open(input: { from: string; tlsCaPem?: string; trustedRootsPem: readonly string[]; now?: () => number }): Promise<{ connection: StateHandoffConnection; source: HandoffSource }> {
    const url = input.from.replace(/\/$/, '');
    const connection = new StateHandoffConnection(url, input.tlsCaPem);
    try {
      const now = (input.now ?? Date.now)();
      const nonce = randomBytes(32);
      const bytes = await connection.send('POST', '/v1/attestation', encodeDeterministic({ nonce }), BUNDLE_CONTENT_TYPE);
      const verified = await verifyBundle(bytes, { trustedRootsPem: input.trustedRootsPem, now, maxAgeMs: SOURCE_BUNDLE_MAX_AGE_MS, expectedNonce: nonce });
      if (!connection.lastSeen || !equalBytes(connection.lastSeen, verified.core.tlsKeySha256)) {
        throw new ObscuraError('ERR_VALUE_MISMATCH', `the TLS key of ${url} is not the one its evidence attests: something is in between`);
      }
      connection.pinned = verified.core.tlsKeySha256;
      if (!verified.manifest) throw new ObscuraError('ERR_POLICY_VIOLATION', `${url} has no manifest: there is nothing to hand over, and nothing says who may hold it`);
      const facts = await verifyEvidenceAgainstReference(verified.bundle.evidence, serviceReference(verified.manifest), new Date(now));
      return { connection, source: { url, verified, facts, coreSha256: await coreDigest(verified.bundle.core), manifest: verified.manifest } };
    } catch (e) {
      await connection.close();
      throw e;
    }
  }

  async challenge(): Promise<Uint8Array> {
    const bytes = await this.send('POST', '/v1/handoff/challenge');
    const value = JSON.parse(new TextDecoder().decode(bytes)) as { challenge?: unknown };
    if (typeof value.challenge !== 'string') throw new ObscuraError('ERR_MALFORMED', 'the handoff challenge is missing');
    const challenge = fromBase64Url(value.challenge);
    if (challenge.length !== STATE_HANDOFF_CHALLENGE_BYTES) throw new ObscuraError('ERR_MALFORMED', `a handoff challenge is ${STATE_HANDOFF_CHALLENGE_BYTES} bytes`);
    return challenge;
  }

  async handOff(req: StateHandoffRequest): Promise<SealedStateHandoff> {
    const bytes = await this.send('POST', '/v1/handoff', encodeStateHandoffRequest(req), STATE_HANDOFF_CONTENT_TYPE);
    return parseSealedStateHandoff(bytes);
  }

  private async send(method: 'GET' | 'POST', path: string, body?: Uint8Array, accept?: string): Promise<Uint8Array> {
    if (!this.pinned && path !== '/v1/attestation') throw new ObscuraError('ERR_USAGE', 'verify the source before anything else');
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.url}${path}`, {
        method,
        dispatcher: this.agent,
        headers: { ...(body ? { 'content-type': 'application/cbor' } : {}), ...(accept ? { accept } : {}) },
        body: body ? Buffer.from(bufferOf(body)) : undefined,
      });
    } catch (cause) {
      const inner = cause instanceof ObscuraError ? cause : (cause as { cause?: unknown }).cause;
      if (inner instanceof ObscuraError) throw inner;
      throw new ObscuraError('ERR_UPSTREAM', `cannot reach the attestation service at ${this.url} (${(cause as Error).message})`, { cause });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > MAX_HANDED_OVER_STATE_BYTES) throw new ObscuraError('ERR_TOO_LARGE', `the answer of ${this.url} is larger than ${MAX_HANDED_OVER_STATE_BYTES} bytes`);
      chunks.push(c as Buffer);
    }
    const bytes = new Uint8Array(Buffer.concat(chunks));
    if (res.statusCode >= 300) throw fromWireErrorBytes(res.statusCode, bytes);
    return bytes;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** The receiver's half of the exchange: a fresh HPKE key pair and evidence binding it (unsent). */
export async function prepareHandoffRequest(input: {
  tee: TeeProvider;
  challenge: Uint8Array;
  sourceCoreSha256: Uint8Array;
  tlsCertPem: string; // the receiver's own TLS certificate
  endpoint: string; // where the receiver will serve
  suite?: HpkeSuiteName;
}): Promise<{ request: StateHandoffRequest; key: HpkeKeyPair; evidenceSha256: Uint8Array }> {
  const key = await generateHpkeKeyPair(input.suite ?? HPKE_SUITES_BY_PREFERENCE[0]);
  const binding = {
    challenge: input.challenge,
    sourceCoreSha256: input.sourceCoreSha256,
    hpkeSuite: key.suite,
    hpkePublicKey: key.publicKey,
    tlsKeySha256: await sha256(certificateSpki(input.tlsCertPem)),
    endpoint: input.endpoint,
  };
  const evidence = await input.tee.attest(await stateHandoffReportData(binding));
  return { request: { v: PROTOCOL_VERSION, evidence, ...binding }, key, evidenceSha256: await evidenceDigest(evidence) };
}

function requireListed(manifest: Manifest, measurementHex: string, who: string): void {
  if (!manifest.attestationService?.measurements.includes(measurementHex)) {
    throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `${who} measurement ${measurementHex.slice(0, 16)}… is not among the manifest's attestation service measurements`);
  }
}

/**
 * Open what the source sealed and check it before it is used: its chain verifies (links, owner
 * signatures, manifests), ends at the head the source sealed at, extends the head the source attested,
 * and its manifest lists the source's and the receiver's measurements.
 */
export async function openHandedOverState(input: {
  sealed: SealedStateHandoff;
  key: HpkeKeyPair;
  evidenceSha256: Uint8Array;
  source: HandoffSource;
  ownMeasurement: Uint8Array;
  now?: () => number;
}): Promise<ServiceStateSnapshot> {
  const plaintext = await openStateHandoff({
    sealed: input.sealed,
    recipientKey: input.key.privateKey,
    expected: { sourceCoreSha256: input.source.coreSha256, targetEvidenceSha256: input.evidenceSha256, suite: input.key.suite },
  });
  const snap = decodeServiceState(plaintext, RECEIVED_STATE);
  if (snap.handedOff) throw new ObscuraError('ERR_VALUE_MISMATCH', `${RECEIVED_STATE} says it was handed off already`);
  let store: ManifestStore;
  try {
    store = await ManifestStore.restore(snap.manifests, input.now ?? Date.now);
  } catch (cause) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `the manifest chain of ${RECEIVED_STATE} does not verify (${(cause as Error).message})`, { cause });
  }
  if (!store.current || !equalBytes(store.head, input.sealed.manifestHead)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `the manifest chain of ${RECEIVED_STATE} does not end at the head the source sealed it at`);
  }
  const attested = input.source.verified;
  if (!(await extendsSeenChain(store.chain, { seq: attested.bundle.chain.length - 1, head: attested.manifestHead }))) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `the manifest chain of ${RECEIVED_STATE} does not extend the one the source attested`);
  }
  requireListed(store.current, toHex(input.source.facts.measurement), "the source's");
  requireListed(store.current, toHex(input.ownMeasurement), "this service's");
  return snap;
}

/**
 * The whole receiving side (`main.ts --handoff-from URL`): verify the source, ask for its challenge,
 * attest a fresh key, and open and check the state it seals to that key. Nothing is sent before the
 * source checked out, and the caller makes the state durable under its own TEE key.
 */
export async function receiveStateHandoff(input: {
  from: string;
  tlsCaPem?: string; // CA of the source's TLS certificate
  trustedRootsPem: readonly string[]; // roots the source's evidence must chain to
  tee: TeeProvider;
  measurement: Uint8Array; // this service's own
  tlsCertPem: string;
  endpoint: string;
  log: (event: Record<string, unknown>) => void;
  now?: () => number;
}): Promise<ServiceStateSnapshot> {
  const { connection, source } = await StateHandoffConnection.open(input);
  try {
    // Refuse early, with a clear reason, what the source would refuse anyway.
    requireListed(source.manifest, toHex(input.measurement), "this service's");
    const challenge = await connection.challenge();
    const prepared = await prepareHandoffRequest({ tee: input.tee, challenge, sourceCoreSha256: source.coreSha256, tlsCertPem: input.tlsCertPem, endpoint: input.endpoint });
    const sealed = await connection.handOff(prepared.request);
    const snap = await openHandedOverState({ sealed, key: prepared.key, evidenceSha256: prepared.evidenceSha256, source, ownMeasurement: input.measurement, now: input.now });
    input.log({
      event: 'handoff-received',
      from: source.url,
      sourceMeasurement: toHex(source.facts.measurement),
      manifestHead: toHex(sealed.manifestHead),
      manifestEntries: snap.manifests.entries.length,
      workers: snap.workers.workers.length,
      secrets: snap.secrets.length,
      modelKeys: snap.modelKeys.length,
    });
    return snap;
  } finally {
    await connection.close();
  }
}
