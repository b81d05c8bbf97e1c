/**
 * The attestation service's HTTPS API. Worker secret release requires the worker's mesh certificate
 * (mutual TLS); everything else is public, since it is either attested or sealed.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { equalBytes, fromBase64Url, fromHex, sha256, toBase64Url, toHex, utf8 } from '../shared/bytes.ts';
import { asRecord, decodeStrict, fieldBytes, fieldString } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { parseEvidence } from '../shared/attestation/evidence.ts';
import { BUNDLE_CONTENT_TYPE, LABEL_SECRET_TO_SERVICE, LABEL_SECRET_TO_WORKER, SECRET_CONTENT_TYPE } from '../shared/protocol/constants.ts';
import { encodeSealedSecret, openSecret, parseSealedSecret, sealSecret } from '../shared/protocol/inference-secret.ts';
import { toWireError } from '../shared/protocol/wire-error.ts';
import type { HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import type { BundleIssuer } from './bundle-issuer.ts';
import type { ManifestStore } from './manifest-store.ts';
import type { SecretStore } from './secret-store.ts';
import type { WorkerRegistry } from './worker-registry.ts';

const MAX_BODY_BYTES = 1024 * 1024;
const MIN_NONCE_BYTES = 16;
const MAX_NONCE_BYTES = 64;

export interface ServiceContext {
  issuer: BundleIssuer;
  manifests: ManifestStore;
  secrets: SecretStore;
  workers: WorkerRegistry;
  hpke: HpkeKeyPair[];
  log: (event: Record<string, unknown>) => void;
  now: () => number;
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
  try {
    return asRecord(JSON.parse(new TextDecoder().decode(await body(req))), 'request body');
  } catch (e) {
    if (e instanceof ObscuraError) throw e;
    throw new ObscuraError('ERR_MALFORMED', 'request body is not JSON');
  }
}

type Handler = (ctx: ServiceContext & { meshCaPem: string }, req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void>;

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
    json(res, 200, {
      manifest: ctx.manifests.current ?? null,
      head: toHex(ctx.manifests.head),
      chain: ctx.manifests.chain.map((e) => ({ ...e, prev: toHex(e.prev), manifestSha256: toHex(e.manifestSha256), signature: toBase64Url(e.signature) })),
    });
  }],

  ['PUT', /^\/v1\/manifest$/, async (ctx, req, res) => {
    const m = await jsonBody(req);
    if (typeof m.ownerId !== 'string' || typeof m.signature !== 'string') {
      throw new ObscuraError('ERR_MALFORMED', 'a manifest update needs ownerId and signature');
    }
    const entry = await ctx.manifests.apply({ manifest: m.manifest, ownerId: m.ownerId, signature: fromBase64Url(m.signature) });
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
    const manifest = ctx.manifests.current;
    const now = ctx.now();
    if (!manifest) throw new ObscuraError('ERR_NO_WORKER', 'no manifest is set');
    if (sealed.expiresAt <= now || sealed.expiresAt > now + manifest.limits.secretLifetimeMs + 60_000) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', `the secret's expiry must be within the manifest's secret lifetime (${manifest.limits.secretLifetimeMs} ms)`);
    }
    const key = ctx.hpke.find((k) => k.suite === sealed.suite);
    if (!key) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${sealed.suite} is not offered`);
    const secret = await openSecret({ sealed, recipientKey: key.privateKey, label: LABEL_SECRET_TO_SERVICE, context: digest });
    ctx.secrets.put(sealed.sid, { secret, manifestHead: sealed.manifestHead, expiresAt: sealed.expiresAt });
    ctx.log({ event: 'secret-accepted', sid: toHex(sealed.sid), expiresAt: sealed.expiresAt });
    json(res, 201, { sid: toHex(sealed.sid), expiresAt: sealed.expiresAt });
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
      });
      ctx.log({ event: 'worker-admitted', workerId: worker.workerId, measurement: worker.measurement, endpoint: worker.endpoint });
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
        measurement: w.measurement,
        certExpiresAt: w.certExpiresAt,
        current: equalBytes(w.admittedUnder, ctx.manifests.head) && !w.revoked && w.certExpiresAt > ctx.now(),
      })),
    });
  }],

  // Secret release: only to a worker presenting a current mesh certificate, sealed to its attested key.
  ['GET', /^\/v1\/workers\/secrets\/([0-9a-f]{32})$/, async (ctx, req, res, [sidHex]) => {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate?.();
    if (!socket.authorized || !peer?.raw) {
      throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'secret release needs a worker certificate issued by this service (mutual TLS)');
    }
    const worker = ctx.workers.certified(new Uint8Array(peer.raw));
    const sid = fromHex(sidHex);
    const held = ctx.secrets.get(sid);
    if (!equalBytes(held.manifestHead, worker.admittedUnder)) {
      throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'the secret was sealed under another manifest than the one this worker was admitted under');
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
];

export function createServiceServer(ctx: ServiceContext & { meshCaPem: string }, tls: { certPem: string; keyPem: string }): Server {
  return createServer(
    { cert: tls.certPem, key: tls.keyPem, ca: [ctx.meshCaPem], requestCert: true, rejectUnauthorized: false },
    async (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      try {
        for (const [method, pattern, handler] of routes) {
          const match = pattern.exec(path);
          if (match && req.method === method) return await handler(ctx, req, res, match.slice(1));
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
