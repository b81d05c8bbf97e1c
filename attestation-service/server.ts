/**
 * The attestation service's HTTPS API. Worker secret and model key release require the worker's mesh
 * certificate (mutual TLS); administrative changes require an owner's signature; everything else is
 * public, since it is either attested or sealed. Every change is durable before it is answered.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { equalBytes, fromBase64Url, fromHex, sha256, toBase64Url, toHex, utf8 } from '../shared/bytes.ts';
import { asRecord, decodeStrict, fieldBytes, fieldString } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { parseEvidence } from '../shared/attestation/evidence.ts';
import { parseGpuEvidenceList } from '../shared/attestation/gpu-evidence.ts';
import { checkpointToJson } from '../shared/manifest/checkpoint.ts';
import { PURPOSE_MODEL_KEY_UPLOAD, PURPOSE_WORKER_REVOKE, verifyOwnerRequest } from '../shared/manifest/owner-request.ts';
import { BUNDLE_CONTENT_TYPE, LABEL_MODEL_KEY_TO_SERVICE, LABEL_MODEL_KEY_TO_WORKER, LABEL_SECRET_TO_SERVICE, LABEL_SECRET_TO_WORKER, MODEL_KEY_CONTENT_TYPE, SECRET_CONTENT_TYPE } from '../shared/protocol/constants.ts';
import { encodeSealedSecret, openSecret, parseSealedSecret, sealSecret } from '../shared/protocol/inference-secret.ts';
import { encodeSealedModelKey, modelKeyUploadFields, openModelKey, sealModelKey, type SealedModelKey } from '../shared/protocol/model-key.ts';
import { importInferenceSecret } from '../shared/protocol/request-keys.ts';
import { deriveSecretAllowanceKey, parseSecretAllowance, verifySecretAllowance } from '../shared/protocol/secret-allowance.ts';
import { toWireError } from '../shared/protocol/wire-error.ts';
import type { HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import type { BundleIssuer } from './bundle-issuer.ts';
import type { ManifestStore } from './manifest-store.ts';
import type { ModelKeyStore } from './model-keys.ts';
import { SecretStore } from './secret-store.ts';
import type { WorkerRegistry } from './worker-registry.ts';
import type { StateHandoffSource } from './state-handoff.ts';
import { STATE_HANDOFF_CONTENT_TYPE } from '../shared/protocol/state-handoff.ts';

const MAX_BODY_BYTES = 1024 * 1024;
const MIN_NONCE_BYTES = 16;
const MAX_NONCE_BYTES = 64;
const WEIGHTS_DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface ServiceContext {
  issuer: BundleIssuer;
  manifests: ManifestStore;
  secrets: SecretStore;
  workers: WorkerRegistry;
  models: ModelKeyStore;
  hpke: HpkeKeyPair[];
  log: (event: Record<string, unknown>) => void;
  now: () => number;
  meshCaPem: string;
  checkpointKey: Uint8Array; // public point, also in the attested core
  persist: () => Promise<void>; // make every change so far durable
  handoff?: StateHandoffSource; // moving the state to another attestation service (state-handoff.ts)
}

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new ObscuraError('ERR_MALFORMED', 'request body too large');
    chunks.push(c as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function send(res: ServerResponse, status: number, contentType: string, bytes: Uint8Array): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(bytes);
}

const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, 'application/json', utf8(JSON.stringify(value)));

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(await body(req)));
  } catch (e) {
    if (e instanceof ObscuraError) throw e;
    throw new ObscuraError('ERR_MALFORMED', 'request body is not JSON');
  }
  return asRecord(value, 'request body');
}

const optionalB64 = (v: unknown, what: string): Uint8Array | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ObscuraError('ERR_MALFORMED', `${what} must be base64url`);
  return fromBase64Url(v);
};
const requiredString = (m: Record<string, unknown>, key: string): string => {
  if (typeof m[key] !== 'string' || !m[key]) throw new ObscuraError('ERR_MALFORMED', `the request needs ${key}`);
  return m[key] as string;
};
const requiredInt = (m: Record<string, unknown>, key: string): number => {
  if (typeof m[key] !== 'number' || !Number.isSafeInteger(m[key])) throw new ObscuraError('ERR_MALFORMED', `the request needs ${key} (an integer)`);
  return m[key] as number;
};
const headOf = (v: unknown): Uint8Array => {
  if (typeof v !== 'string') throw new ObscuraError('ERR_MALFORMED', 'the request needs manifestHead (hex)');
  const h = fromHex(v);
  if (h.length !== 32) throw new ObscuraError('ERR_MALFORMED', 'manifestHead is 32 bytes');
  return h;
};

const chainJson = (ctx: ServiceContext) =>
  ctx.manifests.chain.map((e) => ({ ...e, prev: toHex(e.prev), manifestSha256: toHex(e.manifestSha256), signature: toBase64Url(e.signature) }));

/** The certified worker on the other end of this mutual-TLS connection. */
function peerWorker(ctx: ServiceContext, req: IncomingMessage) {
  const socket = req.socket as TLSSocket;
  const peer = socket.getPeerCertificate?.();
  if (!socket.authorized || !peer?.raw) {
    throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this needs a worker certificate issued by this service (mutual TLS)');
  }
  return ctx.workers.certified(new Uint8Array(peer.raw));
}

type Handler = (ctx: ServiceContext, req: IncomingMessage, res: ServerResponse, params: string[], query: URLSearchParams) => Promise<void>;

const routes: [string, RegExp, Handler][] = [
  ['GET', /^\/healthz$/, async (ctx, _req, res) => json(res, 200, { ok: true, manifest: ctx.manifests.current !== undefined })],

  ['GET', /^\/v1\/attestation$/, async (ctx, _req, res) => send(res, 200, BUNDLE_CONTENT_TYPE, await ctx.issuer.bundle())],

  // A client that wants liveness sends a nonce and gets evidence made for it.
  ['POST', /^\/v1\/attestation$/, async (ctx, req, res) => {
    const m = asRecord(decodeStrict(await body(req), 'attestation request'), 'attestation request');
    const nonce = fieldBytes(m, 'nonce', 'attestation request');
    if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
      throw new ObscuraError('ERR_MALFORMED', `the nonce must be ${MIN_NONCE_BYTES} to ${MAX_NONCE_BYTES} bytes`);
    }
    send(res, 200, BUNDLE_CONTENT_TYPE, await ctx.issuer.bundle(nonce));
  }],

  ['GET', /^\/v1\/manifest$/, async (ctx, _req, res) => {
    json(res, 200, { manifest: ctx.manifests.current ?? null, head: toHex(ctx.manifests.head), chain: chainJson(ctx) });
  }],

  // Every manifest the chain names, oldest first: the chain entries carry their digests.
  ['GET', /^\/v1\/manifest\/history$/, async (ctx, _req, res) => {
    json(res, 200, { head: toHex(ctx.manifests.head), chain: chainJson(ctx), manifests: ctx.manifests.history().map((h) => h.manifest) });
  }],

  // The signed checkpoint of the head (or of entry ?seq=N).
  ['GET', /^\/v1\/manifest\/checkpoint$/, async (ctx, _req, res, _p, query) => {
    const seqText = query.get('seq');
    const seq = seqText === null ? undefined : Number(seqText);
    if (seq !== undefined && !Number.isSafeInteger(seq)) throw new ObscuraError('ERR_MALFORMED', 'seq must be an integer');
    const c = ctx.manifests.checkpoint(seq);
    if (!c) throw new ObscuraError('ERR_USAGE', seq === undefined ? 'no manifest is set, so there is no checkpoint yet' : `there is no chain entry ${seq}`);
    json(res, 200, checkpointToJson(c, ctx.checkpointKey));
  }],

  ['PUT', /^\/v1\/manifest$/, async (ctx, req, res) => {
    const m = await jsonBody(req);
    if (typeof m.ownerId !== 'string' || !m.ownerId) throw new ObscuraError('ERR_MALFORMED', 'a manifest update needs ownerId');
    const signature = optionalB64(m.signature, 'signature');
    if (!signature) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the manifest update is not signed: an owner of the current manifest must sign it');
    const prev = m.prev === undefined ? undefined : headOf(m.prev);
    const entry = await ctx.manifests.apply({ manifest: m.manifest, ownerId: m.ownerId, signature, prev });
    ctx.log({ event: 'manifest-set', seq: entry.seq, authorizedBy: entry.authorizedBy, head: toHex(ctx.manifests.head) });
    json(res, 200, { seq: entry.seq, head: toHex(ctx.manifests.head) });
  }],

  // A client's inference secret, HPKE-sealed to a key this service attested in a core it issued.
  ['POST', /^\/v1\/secrets$/, async (ctx, req, res) => {
    const m = asRecord(decodeStrict(await body(req), 'secret submission'), 'secret submission');
    const digest = fieldBytes(m, 'coreDigest', 'secret submission', 32);
    const sealedBytes = fieldBytes(m, 'sealed', 'secret submission');
    const sealed = parseSealedSecret(sealedBytes);
    const issued = ctx.issuer.issuedCore(toHex(digest));
    if (!issued) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the secret was sealed against a bundle this service did not issue or that expired: fetch a fresh bundle');
    if (!equalBytes(sealed.manifestHead, issued.core.manifestHead)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the secret names a manifest head other than its bundle\'s');
    if (!equalBytes(issued.core.manifestHead, ctx.manifests.head)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the manifest changed since this bundle was issued: fetch a fresh bundle (with a nonce, past any cache) and exchange again');
    }
    const manifest = ctx.manifests.current;
    const now = ctx.now();
    if (!manifest) throw new ObscuraError('ERR_NO_WORKER', 'no manifest is set');
    if (sealed.expiresAt <= now || sealed.expiresAt > now + manifest.limits.secretLifetimeMs + 60_000) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', `the secret's expiry must be within the manifest's secret lifetime (${manifest.limits.secretLifetimeMs} ms)`);
    }
    const key = ctx.hpke.find((k) => k.suite === sealed.suite);
    if (!key) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${sealed.suite} is not offered`);
    const secret = await openSecret({ sealed, recipientKey: key.privateKey, label: LABEL_SECRET_TO_SERVICE, context: digest });
    ctx.secrets.put(sealed.sid, { secret, manifestHead: sealed.manifestHead, expiresAt: sealed.expiresAt, allowedHeads: [] });
    try {
      await ctx.persist();
    } catch (e) {
      ctx.secrets.remove(sealed.sid);
      throw e;
    }
    ctx.log({ event: 'secret-accepted', sid: toHex(sealed.sid), suite: sealed.suite, expiresAt: sealed.expiresAt });
    json(res, 201, { sid: toHex(sealed.sid), expiresAt: sealed.expiresAt });
  }],

  // The secret's holder lets it follow a later manifest of this chain (shared/protocol/secret-allowance.ts).
  ['POST', /^\/v1\/secrets\/allow$/, async (ctx, req, res) => {
    const allowance = parseSecretAllowance(await body(req));
    const held = ctx.secrets.get(allowance.sid);
    if (!equalBytes(allowance.fromHead, held.manifestHead)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the allowance names another head than the one the secret was sealed under');
    const fromSeq = ctx.manifests.seqOf(allowance.fromHead);
    const toSeq = ctx.manifests.seqOf(allowance.toHead);
    if (fromSeq === undefined || toSeq === undefined) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the allowance names a head this service\'s manifest chain never reached');
    if (toSeq <= fromSeq) throw new ObscuraError('ERR_VALUE_MISMATCH', `a secret may only follow a later manifest (entry ${toSeq} is not after entry ${fromSeq})`);
    const secretKey = await importInferenceSecret(held.secret);
    await verifySecretAllowance(await deriveSecretAllowanceKey(secretKey), allowance);
    const undo = ctx.secrets.allow(held, allowance.toHead);
    if (undo) {
      try {
        await ctx.persist();
      } catch (e) {
        undo();
        throw e;
      }
    }
    ctx.log({ event: 'secret-allowed', sid: toHex(allowance.sid), fromSeq, toSeq, changed: undo !== undefined });
    json(res, 200, { sid: toHex(allowance.sid), seq: toSeq });
  }],

  ['POST', /^\/v1\/workers\/challenge$/, async (ctx, _req, res) => json(res, 200, ctx.workers.challenge())],

  ['POST', /^\/v1\/workers\/register$/, async (ctx, req, res) => {
    const m = asRecord(decodeStrict(await body(req), 'registration'), 'registration');
    try {
      const { worker, certificatePem } = await ctx.workers.register({
        nonce: fieldBytes(m, 'nonce', 'registration'),
        evidence: parseEvidence(m.evidence, 'registration.evidence'),
        hpkePublicKey: fieldBytes(m, 'hpkePublicKey', 'registration'),
        hpkeSuite: fieldString(m, 'hpkeSuite', 'registration'),
        certSpki: fieldBytes(m, 'certSpki', 'registration'),
        endpoint: fieldString(m, 'endpoint', 'registration'),
        gpuEvidence: parseGpuEvidenceList(m.gpuEvidence, 'registration.gpuEvidence'),
      });
      try {
        await ctx.persist();
      } catch (e) {
        ctx.workers.forget(worker);
        throw e;
      }
      ctx.log({ event: 'worker-admitted', workerId: worker.workerId, measurement: worker.measurement, endpoint: worker.endpoint, hpkeSuite: worker.hpkeSuite, gpus: (worker.gpus ?? []).map((g) => ({ kind: g.kind, driverVersion: g.driverVersion, vbiosVersion: g.vbiosVersion })) });
      json(res, 200, {
        workerId: worker.workerId,
        certificatePem,
        meshCaPem: ctx.meshCaPem,
        expiresAt: worker.certExpiresAt,
        manifestHead: toBase64Url(worker.admittedUnder),
      });
    } catch (e) {
      ctx.log({ event: 'worker-refused', code: (e as ObscuraError).code ?? 'error', reason: (e as Error).message });
      throw e;
    }
  }],

  ['GET', /^\/v1\/workers$/, async (ctx, _req, res) => {
    json(res, 200, {
      workers: ctx.workers.list().map((w) => ({
        workerId: w.workerId,
        endpoint: w.endpoint,
        platform: w.platform ?? 'sev-snp', // admissions from before TDX were SEV-SNP
        measurement: w.measurement,
        admittedAt: w.admittedAt,
        certExpiresAt: w.certExpiresAt,
        revoked: w.revoked,
        gpus: (w.gpus ?? []).map((g) => ({ kind: g.kind, driverVersion: g.driverVersion, vbiosVersion: g.vbiosVersion, measurementCount: g.measurementCount, measurementsSha256: g.measurementsSha256, fwid: g.fwid, rootFingerprintSha256: g.root.fingerprintSha256 })),
        current: equalBytes(w.admittedUnder, ctx.manifests.head) && !w.revoked && w.certExpiresAt > ctx.now(),
      })),
    });
  }],

  // An owner revokes a worker (and, unless identityOnly, the machine it runs on).
  ['POST', /^\/v1\/workers\/revoke$/, async (ctx, req, res) => {
    const m = await jsonBody(req);
    const workerId = requiredString(m, 'workerId');
    const identityOnly = m.identityOnly === true;
    const ownerId = requiredString(m, 'ownerId');
    const fields = { workerId, identityOnly, timestamp: requiredInt(m, 'timestamp'), manifestHead: headOf(m.manifestHead) };
    await verifyOwnerRequest({ manifest: ctx.manifests.current, head: ctx.manifests.head, ownerId, purpose: PURPOSE_WORKER_REVOKE, fields, signature: optionalB64(m.signature, 'signature'), now: ctx.now() });
    const revocation = ctx.workers.revoke(workerId, { identityOnly });
    await ctx.persist();
    ctx.log({ event: 'worker-revoked', workerId, by: ownerId, registrations: revocation.registrations, machine: revocation.machine !== undefined });
    json(res, 200, { workerId, registrations: revocation.registrations, machineRevoked: revocation.machine !== undefined });
  }],

  // Secret release: only to a worker presenting a current mesh certificate, sealed to its attested key.
  ['GET', /^\/v1\/workers\/secrets\/([0-9a-f]{32})$/, async (ctx, req, res, [sidHex]) => {
    const worker = peerWorker(ctx, req);
    const sid = fromHex(sidHex);
    const held = ctx.secrets.get(sid);
    if (!SecretStore.releasableUnder(held, worker.admittedUnder)) {
      // The worker is current, so the secret predates the manifest: its owner must exchange a new one
      // (or allow this manifest for it).
      throw new ObscuraError('ERR_UNKNOWN_SECRET', 'the secret was sealed under an earlier manifest than this worker was admitted under: exchange a new one');
    }
    const sealed = await sealSecret({
      suite: worker.hpkeSuite,
      recipientPublicKey: worker.hpkePublicKey,
      label: LABEL_SECRET_TO_WORKER,
      context: await sha256(worker.hpkePublicKey),
      secret: held.secret,
      meta: { sid, manifestHead: held.manifestHead, expiresAt: held.expiresAt },
    });
    ctx.log({ event: 'secret-released', sid: sidHex, workerId: worker.workerId });
    send(res, 200, SECRET_CONTENT_TYPE, encodeSealedSecret(sealed));
  }],

  // Which model keys the service holds (digests only).
  ['GET', /^\/v1\/models\/keys$/, async (ctx, _req, res) => {
    json(res, 200, { keys: ctx.models.snapshot().map((k) => ({ weightsDigest: k.weightsDigest, createdAt: k.createdAt })) });
  }],

  // An owner hands over a model key, HPKE-sealed to a key this service attested.
  ['POST', /^\/v1\/models\/keys$/, async (ctx, req, res) => {
    const m = await jsonBody(req);
    const weightsDigest = requiredString(m, 'weightsDigest');
    if (!WEIGHTS_DIGEST.test(weightsDigest)) throw new ObscuraError('ERR_MALFORMED', 'weightsDigest must be sha256:HEX');
    const ownerId = requiredString(m, 'ownerId');
    const coreDigest = optionalB64(m.coreDigest, 'coreDigest');
    if (!coreDigest || coreDigest.length !== 32) throw new ObscuraError('ERR_MALFORMED', 'the request needs coreDigest (32 bytes)');
    const sealed: SealedModelKey = { v: 1, suite: requiredString(m, 'suite'), weightsDigest, enc: optionalB64(m.enc, 'enc') ?? new Uint8Array(0), ct: optionalB64(m.ct, 'ct') ?? new Uint8Array(0) };
    const fields = modelKeyUploadFields({ sealed, coreDigest, timestamp: requiredInt(m, 'timestamp'), manifestHead: headOf(m.manifestHead) });
    await verifyOwnerRequest({ manifest: ctx.manifests.current, head: ctx.manifests.head, ownerId, purpose: PURPOSE_MODEL_KEY_UPLOAD, fields, signature: optionalB64(m.signature, 'signature'), now: ctx.now() });
    if (!ctx.issuer.issuedCore(toHex(coreDigest))) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the key was sealed against a bundle this service did not issue or that expired: fetch a fresh bundle');
    const hpke = ctx.hpke.find((k) => k.suite === sealed.suite);
    if (!hpke) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${sealed.suite} is not offered`);
    const key = await openModelKey({ sealed, recipientKey: hpke.privateKey, label: LABEL_MODEL_KEY_TO_SERVICE, context: coreDigest });
    const { changed, previous } = ctx.models.put({ weightsDigest, key, createdAt: ctx.now() });
    if (changed) {
      try {
        await ctx.persist();
      } catch (e) {
        ctx.models.undo(weightsDigest, previous);
        throw e;
      }
    }
    ctx.log({ event: 'model-key-stored', weightsDigest, by: ownerId, changed, replaced: changed && previous !== undefined });
    json(res, changed ? 201 : 200, { weightsDigest, changed });
  }],

  // Model key release: to a certified worker whose manifest lets the AI code it names load the weights.
  ['GET', /^\/v1\/workers\/models\/([0-9a-f]{64})\/key$/, async (ctx, req, res, [digestHex], query) => {
    const worker = peerWorker(ctx, req);
    const aiCode = query.get('aiCode');
    if (!aiCode) throw new ObscuraError('ERR_MALFORMED', 'name the AI code that will load the weights (?aiCode=NAME)');
    const weightsDigest = `sha256:${digestHex}`;
    const held = ctx.models.releasable(ctx.manifests.current!, weightsDigest, aiCode);
    const sealed = await sealModelKey({
      suite: worker.hpkeSuite,
      recipientPublicKey: worker.hpkePublicKey,
      label: LABEL_MODEL_KEY_TO_WORKER,
      context: await sha256(worker.hpkePublicKey),
      key: held.key,
      weightsDigest,
    });
    ctx.log({ event: 'model-key-released', weightsDigest, aiCode, workerId: worker.workerId });
    send(res, 200, MODEL_KEY_CONTENT_TYPE, encodeSealedModelKey(sealed));
  }],

  // Moving the state to another attestation service (state-handoff.ts): whether this one handed off,
  // a one-time challenge, and the state sealed to an attested successor the manifest allows.
  ['GET', /^\/v1\/handoff$/, async (ctx, _req, res) => json(res, 200, ctx.handoff?.status() ?? { handedOff: false })],

  ['POST', /^\/v1\/handoff\/challenge$/, async (ctx, _req, res) => json(res, 200, handoffOf(ctx).challenge())],

  ['POST', /^\/v1\/handoff$/, async (ctx, req, res) => {
    send(res, 200, STATE_HANDOFF_CONTENT_TYPE, await handoffOf(ctx).handOff(ctx, await body(req)));
  }],
];

function handoffOf(ctx: ServiceContext): StateHandoffSource {
  if (!ctx.handoff) throw new ObscuraError('ERR_USAGE', 'this service cannot hand off its state');
  return ctx.handoff;
}

/** POSTs that change nothing a handoff carries (the handoff's own routes guard themselves). */
const NON_CHANGING_POSTS = [/^\/v1\/attestation$/, /^\/v1\/workers\/challenge$/, /^\/v1\/handoff(\/challenge)?$/];
/** GETs that hand out what the service holds: after a handoff that custody is the new service's. */
const RELEASING_GETS = /^\/v1\/workers\/(secrets|models)\//;
const changesOrReleasesState = (method: string | undefined, path: string) =>
  method === 'GET' ? RELEASING_GETS.test(path) : !NON_CHANGING_POSTS.some((p) => p.test(path));

export function createServiceServer(ctx: ServiceContext, tls: { certPem: string; keyPem: string }): Server {
  return createServer(
    { cert: tls.certPem, key: tls.keyPem, ca: [ctx.meshCaPem], requestCert: true, rejectUnauthorized: false },
    async (req, res) => {
      const url = new URL(req.url ?? '/', 'https://service.invalid');
      const path = url.pathname;
      try {
        for (const [method, pattern, handler] of routes) {
          const match = pattern.exec(path);
          if (!match || req.method !== method) continue;
          // The one guard for a service that handed its state off (or is handing it off right now).
          const release = changesOrReleasesState(method, path) ? ctx.handoff?.admit() : undefined;
          try {
            return await handler(ctx, req, res, match.slice(1), url.searchParams);
          } finally {
            release?.();
          }
        }
        json(res, 404, { error: { code: 'ERR_USAGE', message: `no route ${req.method} ${path}` } });
      } catch (e) {
        const { status, body: err } = toWireError(e);
        if (status === 500) ctx.log({ event: 'internal-error', path, error: String((e as Error)?.stack ?? e) });
        if (!res.headersSent) json(res, status, err);
        else res.destroy();
      }
    },
  );
}
