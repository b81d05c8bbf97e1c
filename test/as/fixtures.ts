/**
 * Fixtures for the attestation service tests: owners, manifests, an HTTPS agent for the local CA,
 * secrets sealed the way clients seal them (with bytes the test knows), and worker registrations
 * built by hand (to replay them).
 */
import { Agent, request } from 'undici';
import { fromBase64Url, randomBytes, sha256, toBase64Url, toHex } from '../../shared/bytes.ts';
import { encodeDeterministic } from '../../shared/cbor.ts';
import { encodeEvidence } from '../../shared/attestation/evidence.ts';
import { GENESIS_PREV, manifestDigest, signManifestUpdate } from '../../shared/manifest/chain.ts';
import type { Manifest, ManifestInput } from '../../shared/manifest/schema.ts';
import { parseManifest } from '../../shared/manifest/validate-manifest.ts';
import { coreDigest } from '../../shared/protocol/attested-core.ts';
import { LABEL_SECRET_TO_SERVICE, SECRET_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { chooseHpkeSuite, generateHpkeKeyPair } from '../../shared/protocol/hpke-suites.ts';
import { encodeSealedSecret, sealSecret } from '../../shared/protocol/inference-secret.ts';
import { verifyBundle, type VerifiedBundle } from '../../shared/protocol/verify-bundle.ts';
import { workerRegistrationReportData } from '../../shared/protocol/worker-registration.ts';
import type { TeeProvider } from '../../worker-os/tee/provider.ts';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:https';
import { createServiceServer } from '../../attestation-service/server.ts';
import type { OpenedService } from '../../attestation-service/service.ts';

export interface TestOwner {
  id: string;
  privateKey: CryptoKey;
  publicKeyJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  privateJwk: JsonWebKey; // what an owner key file holds
}

export async function makeOwner(id: string): Promise<TestOwner> {
  const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const privateJwk = await crypto.subtle.exportKey('jwk', kp.privateKey);
  return { id, privateKey: kp.privateKey, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: privateJwk.x!, y: privateJwk.y! }, privateJwk };
}

export function testManifest(input: { rootPems: string[]; workerMeasurements: string[]; owners: TestOwner[]; replayWindowMs?: number }): Manifest {
  const doc: ManifestInput = {
    version: 1,
    platforms: { 'sev-snp': { trustedRoots: input.rootPems, measurements: input.workerMeasurements } },
    aiCode: [
      {
        name: 'sample-ngram',
        imageDigest: `sha256:${'ab'.repeat(32)}`,
        command: ['/usr/bin/node', '/app/server.mjs'],
        sandbox: { network: 'none', memoryLimitBytes: 1 << 30, pidsLimit: 64, cpuQuotaPercent: 100, scratchBytes: 1 << 20 },
      },
    ],
    models: [{ name: 'sample-ngram', weightsDigest: `sha256:${'cd'.repeat(32)}`, aiCode: ['sample-ngram'] }],
    owners: input.owners.map((o) => ({ id: o.id, publicKeyJwk: o.publicKeyJwk })),
    limits: { secretLifetimeMs: 3600_000, bundleMaxAgeMs: 600_000, replayWindowMs: input.replayWindowMs ?? 300_000, workerCertLifetimeMs: 3600_000 },
  };
  return parseManifest(doc);
}

export const caAgent = (caPem: string) => new Agent({ connect: { ca: caPem } });

export async function httpJson(agent: Agent, method: 'GET' | 'PUT' | 'POST', url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(url, {
    method,
    dispatcher: agent,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.statusCode, json };
}

/** PUT a manifest signed by `owner` over `prev` (default: the genesis head, i.e. the first manifest). */
export async function putManifest(agent: Agent, asUrl: string, manifest: Manifest, owner: TestOwner, prev: Uint8Array = GENESIS_PREV, opts: { sendPrev?: boolean; ownerId?: string } = {}) {
  const signature = await signManifestUpdate(owner.privateKey, prev, await manifestDigest(manifest));
  return httpJson(agent, 'PUT', `${asUrl}/v1/manifest`, {
    manifest,
    ownerId: opts.ownerId ?? owner.id,
    signature: toBase64Url(signature),
    ...(opts.sendPrev === false ? {} : { prev: toHex(prev) }),
  });
}

export interface ServicePolicy {
  rootPem: string;
  measurementHex: string;
}

export async function fetchVerifiedBundle(agent: Agent, asUrl: string, policy: ServicePolicy): Promise<{ verified: VerifiedBundle; bytes: Uint8Array }> {
  const res = await request(`${asUrl}/v1/attestation`, { dispatcher: agent });
  const bytes = new Uint8Array(await res.body.arrayBuffer());
  const verified = await verifyBundle(bytes, { trustedRootsPem: policy.rootPem, serviceMeasurements: [policy.measurementHex], now: Date.now(), maxAgeMs: 600_000 });
  return { verified, bytes };
}

/** Seal a secret the test knows to the service, as a client does; returns its id and bytes. */
export async function submitSecret(agent: Agent, asUrl: string, policy: ServicePolicy, opts: { verified?: VerifiedBundle } = {}) {
  const verified = opts.verified ?? (await fetchVerifiedBundle(agent, asUrl, policy)).verified;
  const suite = chooseHpkeSuite(verified.core.hpke.map((h) => h.suite));
  const offer = verified.core.hpke.find((h) => h.suite === suite)!;
  const secret = randomBytes(32);
  const sid = randomBytes(16);
  const digest = await coreDigest(verified.bundle.core);
  const sealed = await sealSecret({ suite, recipientPublicKey: offer.publicKey, label: LABEL_SECRET_TO_SERVICE, context: digest, secret, meta: { sid, manifestHead: verified.core.manifestHead, expiresAt: Date.now() + 600_000 } });
  const res = await request(`${asUrl}/v1/secrets`, { method: 'POST', dispatcher: agent, headers: { 'content-type': SECRET_CONTENT_TYPE }, body: encodeDeterministic({ coreDigest: digest, sealed: encodeSealedSecret(sealed) }) });
  const json = (await res.body.json()) as any;
  return { status: res.statusCode, json, sid, secret, suite };
}

/** A registration request made by hand (challenge, evidence binding it and fresh keys), unsent. */
export async function registrationBody(agent: Agent, asUrl: string, tee: TeeProvider): Promise<Uint8Array> {
  const ch = await httpJson(agent, 'POST', `${asUrl}/v1/workers/challenge`);
  const nonce = fromBase64Url(ch.json.nonce);
  const hpke = await generateHpkeKeyPair();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const certSpki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const evidence = await tee.attest(await workerRegistrationReportData({ nonce, hpkePublicKey: hpke.publicKey, hpkeSuite: hpke.suite, certKeySha256: await sha256(certSpki) }));
  return encodeDeterministic({ nonce, evidence: encodeEvidence(evidence), hpkePublicKey: hpke.publicKey, hpkeSuite: hpke.suite, certSpki, endpoint: 'https://127.0.0.1:1' });
}

export async function postRegistration(agent: Agent, asUrl: string, body: Uint8Array): Promise<{ status: number; json: any }> {
  const res = await request(`${asUrl}/v1/workers/register`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/cbor' }, body });
  return { status: res.statusCode, json: await res.body.json() };
}

/** Every way `bytes` could appear in a text log. */
export function encodingsOf(bytes: Uint8Array): string[] {
  return [toHex(bytes), Buffer.from(bytes).toString('base64').replace(/=+$/, ''), toBase64Url(bytes)];
}

/** An opened service's HTTPS server on 127.0.0.1 (port 0: a free one), as main.ts serves it. */
export async function listenInProcess(service: OpenedService, tls: { certPem: string; keyPem: string }, port = 0): Promise<{ server: Server; url: string }> {
  const server = createServiceServer(service.ctx, tls);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, url: `https://127.0.0.1:${(server.address() as { port: number }).port}` };
}

/** Stop serving, make the state durable and release the state directory, as main.ts does on shutdown. */
export async function closeInProcess(running: { service: OpenedService; server: Server }): Promise<void> {
  running.server.closeAllConnections();
  await new Promise((r) => running.server.close(r));
  await running.service.state.persist();
  await running.service.close();
}

/**
 * A service served in this process that can be stopped and started again over the same state, on the
 * same port (so workers find it where it was). `open` opens the service each time.
 */
export class InProcessService {
  private running?: { service: OpenedService; server: Server; url: string };
  private port = 0;

  constructor(
    private readonly open: () => Promise<OpenedService>,
    private readonly tls: () => { certPem: string; keyPem: string },
  ) {}

  async start(): Promise<string> {
    const service = await this.open();
    const { server, url } = await listenInProcess(service, this.tls(), this.port);
    this.port = Number(new URL(url).port);
    this.running = { service, server, url };
    return url;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    await closeInProcess(this.running);
    this.running = undefined;
  }

  get url(): string {
    return this.running!.url;
  }

  get service(): OpenedService {
    return this.running!.service;
  }
}
