/**
 * The attestation service in-process, over real HTTPS and mutual TLS, with the simulated TEE: worker
 * admission (wrong measurement, wrong root, replayed evidence), the manifest chain's refusals, X-Wing,
 * concurrent registrations and key exchanges, a restart from the sealed state, re-attestation after
 * a manifest change, revocation, and logs without secrets.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch as undiciFetch, type Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, randomBytes, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { GENESIS_PREV } from '../shared/manifest/chain.ts';
import { verifyCheckpoint, checkpointFromJson } from '../shared/manifest/checkpoint.ts';
import { PURPOSE_WORKER_REVOKE, signOwnerRequest } from '../shared/manifest/owner-request.ts';
import { encodeAttestedCore, parseAttestedCore } from '../shared/protocol/attested-core.ts';
import { encodeBundle } from '../shared/protocol/bundle.ts';
import { LABEL_MODEL_KEY_TO_WORKER, LABEL_SECRET_TO_WORKER } from '../shared/protocol/constants.ts';
import { decryptWeights, encryptWeights } from '../shared/protocol/encrypted-weights.ts';
import { openModelKey } from '../shared/protocol/model-key.ts';
import { HPKE_SUITE_X25519, HPKE_SUITE_XWING } from '../shared/protocol/hpke-suites.ts';
import { openSecret } from '../shared/protocol/inference-secret.ts';
import { verifyBundle } from '../shared/protocol/verify-bundle.ts';
import { sha256, toBase64Url } from '../shared/bytes.ts';
import { AttestationServiceClient, type WorkerIdentity } from '../backend/as-client.ts';
import { SecretCache } from '../backend/secret-cache.ts';
import { ensureLocalPki } from '../client/cli/local-deployment/local-pki.ts';
import { AdminClient } from '../client/cli/commands/manifest/admin-client.ts';
import { uploadModelKey } from '../client/cli/commands/manifest/model-keys.ts';
import { ObscuraSession } from '../client/sdk/session.ts';
import { parseClientPolicy } from '../client/sdk/policy.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { openSimulatedSnpTee } from '../worker-os/tee-sim/index.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import {
  caAgent,
  encodingsOf,
  fetchVerifiedBundle,
  httpJson,
  InProcessService,
  makeOwner,
  postRegistration,
  putManifest,
  registrationBody,
  submitSecret,
  testManifest,
  type ServicePolicy,
  type TestOwner,
} from '../test/as/fixtures.ts';
import { openAttestationService } from './service.ts';

let dir: string;
let tls: { certPem: string; keyPem: string };
let caPem: string;
let agent: Agent;
let rootPem: string;
let serviceTee: TeeProvider;
let goodWorkerTee: TeeProvider;
const serviceMeasurement = randomBytes(48);
const workerMeasurement = randomBytes(48);
let owner: TestOwner;
let policy: ServicePolicy;
const logged: Record<string, unknown>[] = [];

// Restarted on the same port, so workers find the service where it was.
const as = new InProcessService(
  () => openAttestationService({ tee: serviceTee, measurement: serviceMeasurement, stateDir: join(dir, 'as'), tlsCertPem: tls.certPem, log: (e) => logged.push(e) }),
  () => tls,
);
const start = () => as.start();
const stop = () => as.stop();
const url = () => as.url;
const codeOf = async (p: Promise<unknown>) => p.then(() => undefined, (e) => (e instanceof ObscuraError ? e.code : String(e)));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-as-'));
  const pki = await ensureLocalPki(dir);
  caPem = pki.caPem;
  tls = { certPem: readFileSync(pki.servers['attestation-service'].certPath, 'utf8'), keyPem: readFileSync(pki.servers['attestation-service'].keyPath, 'utf8') };
  agent = caAgent(caPem);
  const teeDir = join(dir, 'tee');
  rootPem = (await openSimulatedSnpTee({ dir: teeDir })).arkPem;
  serviceTee = await simulatedSnpProvider({ hardwareDir: teeDir, measurement: serviceMeasurement });
  goodWorkerTee = await simulatedSnpProvider({ hardwareDir: teeDir, measurement: workerMeasurement });
  owner = await makeOwner('alice');
  policy = { rootPem, measurementHex: toHex(serviceMeasurement) };
  await start();
  const first = await putManifest(agent, url(), testManifest({ rootPems: [rootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] }), owner);
  expect(first.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await stop();
  await agent?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('X-Wing by default', () => {
  it('attests both suites, X-Wing first, and the SDK seals to X-Wing', async () => {
    const { verified } = await fetchVerifiedBundle(agent, url(), policy);
    expect(verified.core.hpke.map((h) => h.suite)).toEqual([HPKE_SUITE_XWING, HPKE_SUITE_X25519]);
    const session = new ObscuraSession({
      endpoint: url(),
      policy: parseClientPolicy({ version: 1, service: { platform: 'sev-snp', trustedRoots: [rootPem], measurements: [toHex(serviceMeasurement)] } }),
      fetch: ((u: string, init?: RequestInit) => undiciFetch(u, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
    });
    const s = await session.secret();
    expect(logged.some((e) => e.event === 'secret-accepted' && e.sid === toHex(s.sid) && e.suite === HPKE_SUITE_XWING)).toBe(true);
  });

  it('a bundle whose core was stripped to X25519 no longer verifies (report_data binds the list)', async () => {
    const { verified } = await fetchVerifiedBundle(agent, url(), policy);
    const core = parseAttestedCore(verified.bundle.core);
    const stripped = encodeAttestedCore({ ...core, hpke: core.hpke.filter((h) => h.suite === HPKE_SUITE_X25519) });
    const forged = encodeBundle({ ...verified.bundle, core: stripped });
    await expect(verifyBundle(forged, { trustedRootsPem: rootPem, serviceMeasurements: [toHex(serviceMeasurement)], now: Date.now(), maxAgeMs: 600_000 })).rejects.toMatchObject({ code: 'ERR_VALUE_MISMATCH' });
  });
});

describe('worker admission', () => {
  it('a worker with a measurement the manifest does not allow gets no certificate and no secret', async () => {
    const badTee = await simulatedSnpProvider({ hardwareDir: join(dir, 'tee'), measurement: randomBytes(48) });
    const client = new AttestationServiceClient(url(), { ca: caPem });
    expect(await codeOf(client.register(badTee, 'https://127.0.0.1:1'))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    const { sid } = await submitSecret(agent, url(), policy);
    expect(await codeOf(client.fetchSecret(sid))).toBe('ERR_WORKER_NOT_ATTESTED'); // no certificate to present
    const anonymous = await httpJson(agent, 'GET', `${url()}/v1/workers/secrets/${toHex(sid)}`);
    expect(anonymous.json.error.code).toBe('ERR_WORKER_NOT_ATTESTED');
    await client.close();
  });

  it('a worker whose evidence chains to another root gets no certificate', async () => {
    const otherTee = await simulatedSnpProvider({ hardwareDir: join(dir, 'other-machine'), measurement: workerMeasurement });
    const client = new AttestationServiceClient(url(), { ca: caPem });
    expect(['ERR_UNTRUSTED_ROOT', 'ERR_CHAIN_INVALID', 'ERR_SIGNATURE_INVALID']).toContain(await codeOf(client.register(otherTee, 'https://127.0.0.1:1')));
    await client.close();
  }, 20_000);

  it('replayed evidence (a used nonce) is refused', async () => {
    const body = await registrationBody(agent, url(), goodWorkerTee);
    expect((await postRegistration(agent, url(), body)).status).toBe(200);
    const replay = await postRegistration(agent, url(), body);
    expect(replay.status).toBe(403);
    expect(replay.json.error.code).toBe('ERR_VALUE_MISMATCH');
    expect(replay.json.error.message).toMatch(/nonce/);
  });
});

describe('the manifest chain', () => {
  it('refuses an unsigned update, a non-owner, a forged owner signature and a fork; the chain stays', async () => {
    const before = (await httpJson(agent, 'GET', `${url()}/v1/manifest`)).json;
    const head = Buffer.from(before.head, 'hex');
    const mallory = await makeOwner('mallory');
    const next = testManifest({ rootPems: [rootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner], replayWindowMs: 123_000 });
    const unsigned = await httpJson(agent, 'PUT', `${url()}/v1/manifest`, { manifest: next, ownerId: owner.id });
    expect([unsigned.status, unsigned.json.error.code]).toEqual([403, 'ERR_SIGNATURE_INVALID']);
    const nonOwner = await putManifest(agent, url(), next, mallory, head);
    expect([nonOwner.status, nonOwner.json.error.code]).toEqual([403, 'ERR_POLICY_VIOLATION']);
    const forged = await putManifest(agent, url(), next, mallory, head, { ownerId: owner.id });
    expect(forged.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    const fork = await putManifest(agent, url(), next, owner, GENESIS_PREV); // a second "first" manifest
    expect([fork.status, fork.json.error.code]).toEqual([403, 'ERR_VALUE_MISMATCH']);
    expect(fork.json.error.message).toMatch(/fork/);
    const forkUnannounced = await putManifest(agent, url(), next, owner, GENESIS_PREV, { sendPrev: false });
    expect(forkUnannounced.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    const invalid = await httpJson(agent, 'PUT', `${url()}/v1/manifest`, { manifest: { ...next, limits: { ...next.limits, secretLifetimeMs: -1 } }, ownerId: owner.id, signature: 'AA' });
    expect(invalid.json.error.code).toBe('ERR_MALFORMED');
    expect(invalid.json.error.message).toContain('$.limits.secretLifetimeMs');
    const after = (await httpJson(agent, 'GET', `${url()}/v1/manifest`)).json;
    expect(after.head).toBe(before.head);
    expect(after.chain.length).toBe(before.chain.length);
  });

  it('signs a checkpoint of each head under the attested checkpoint key', async () => {
    const { verified } = await fetchVerifiedBundle(agent, url(), policy);
    const { checkpoint, checkpointKey } = checkpointFromJson((await httpJson(agent, 'GET', `${url()}/v1/manifest/checkpoint`)).json);
    expect(toHex(checkpointKey)).toBe(toHex(verified.core.checkpointKey));
    expect(toHex(checkpoint.head)).toBe(toHex(verified.manifestHead));
    await verifyCheckpoint(verified.core.checkpointKey, checkpoint);
    await expect(verifyCheckpoint(verified.core.checkpointKey, { ...checkpoint, seq: checkpoint.seq + 1 })).rejects.toMatchObject({ code: 'ERR_SIGNATURE_INVALID' });
  });
});

describe('concurrency, restart and re-attestation', () => {
  const workers: { client: AttestationServiceClient; identity: WorkerIdentity }[] = [];
  const secrets: { sid: Uint8Array; secret: Uint8Array }[] = [];

  async function opened(w: (typeof workers)[number], sid: Uint8Array): Promise<string> {
    const sealed = await w.client.fetchSecret(sid);
    return toHex(await openSecret({ sealed, recipientKey: w.identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(w.identity.hpke.publicKey) }));
  }

  it('admits 10 workers and takes 10 secrets in parallel', async () => {
    const regs = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const client = new AttestationServiceClient(url(), { ca: caPem });
        return { client, identity: await client.register(goodWorkerTee, 'https://127.0.0.1:1') };
      }),
    );
    workers.push(...regs);
    const subs = await Promise.all(Array.from({ length: 10 }, () => submitSecret(agent, url(), policy)));
    for (const s of subs) expect(s.status).toBe(201);
    secrets.push(...subs);
    expect(new Set(regs.map((r) => r.identity.workerId)).size).toBe(10);
    const released = await Promise.all(secrets.map((s, i) => opened(workers[i], s.sid)));
    expect(released).toEqual(secrets.map((s) => toHex(s.secret)));
  });

  it('after a restart: the same HPKE keys, chain and checkpoint key; workers still certified; secrets still released', async () => {
    const before = await fetchVerifiedBundle(agent, url(), policy);
    await stop();
    await start();
    const after = await fetchVerifiedBundle(agent, url(), policy);
    expect(after.verified.core.hpke.map((h) => toHex(h.publicKey))).toEqual(before.verified.core.hpke.map((h) => toHex(h.publicKey)));
    expect(toHex(after.verified.manifestHead)).toBe(toHex(before.verified.manifestHead));
    expect(toHex(after.verified.core.checkpointKey)).toBe(toHex(before.verified.core.checkpointKey));
    expect(toHex(after.verified.core.meshCaSha256)).toBe(toHex(before.verified.core.meshCaSha256));
    expect(after.verified.bundle.chain.length).toBe(before.verified.bundle.chain.length);
    // The service closed every connection: the workers reconnect with the same certificates.
    const released = await Promise.all(secrets.map((s, i) => opened(workers[i], s.sid)));
    expect(released).toEqual(secrets.map((s) => toHex(s.secret)));
    // A secret sealed against a bundle issued before the restart is refused (that core is not known
    // any more) with ERR_VALUE_MISMATCH, which the SDK answers by fetching a fresh bundle.
    const late = await submitSecret(agent, url(), policy, { verified: before.verified });
    expect([late.status, late.json.error?.code]).toEqual([403, 'ERR_VALUE_MISMATCH']);
  });

  it('a manifest update makes workers re-attest; old secrets are refused, new ones released after re-registration', async () => {
    const before = await fetchVerifiedBundle(agent, url(), policy);
    const next = testManifest({ rootPems: [rootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner], replayWindowMs: 200_000 });
    const upd = await putManifest(agent, url(), next, owner, before.verified.manifestHead);
    expect(upd.status).toBe(200);
    expect(upd.json.seq).toBe(1);
    // A secret sealed under the old head, against the old bundle: the service says to fetch a fresh bundle.
    const stale = await submitSecret(agent, url(), policy, { verified: before.verified });
    expect([stale.status, stale.json.error.code]).toEqual([403, 'ERR_VALUE_MISMATCH']);
    const fresh = await submitSecret(agent, url(), policy);
    expect(fresh.status).toBe(201);
    const w = workers[0];
    expect(await codeOf(w.client.fetchSecret(fresh.sid))).toBe('ERR_WORKER_NOT_ATTESTED');
    // The worker agent's cache re-registers on that answer and asks again.
    let reattested = 0;
    const cache = new SecretCache(w.client, Date.now, async () => {
      reattested++;
      w.identity = await w.client.register(goodWorkerTee, 'https://127.0.0.1:1');
      await cache.setIdentity(w.identity.hpke);
    });
    await cache.setIdentity(w.identity.hpke);
    const [k1, k2] = await Promise.all([cache.get(fresh.sid), cache.get(fresh.sid)]);
    expect(k1).toBe(k2);
    expect(reattested).toBe(1);
    // A secret from before the update: the (now current) worker may not have it; the client re-exchanges.
    expect(await codeOf(cache.get(secrets[1].sid))).toBe('ERR_UNKNOWN_SECRET');
  });
});

describe('model keys', () => {
  it('an owner hands over a model key; only a certified worker whose AI code may load the weights gets it', async () => {
    const settings = { asUrl: url(), caPem, policyPath: '', stateDir: dir };
    const clientPolicy = parseClientPolicy({ version: 1, service: { platform: 'sev-snp', trustedRoots: [rootPem], measurements: [toHex(serviceMeasurement)] } });
    const admin = new AdminClient(settings);
    const attested = await admin.attest(clientPolicy);
    const weightsDigest = attested.verified.manifest!.models[0].weightsDigest;
    const key = randomBytes(32);
    const mallory = await makeOwner('mallory');
    expect(await codeOf(uploadModelKey({ client: admin, attested, signer: mallory, weightsDigest, key }))).toBe('ERR_POLICY_VIOLATION');
    expect(await uploadModelKey({ client: admin, attested, signer: owner, weightsDigest, key })).toMatchObject({ changed: true });
    expect(await uploadModelKey({ client: admin, attested, signer: owner, weightsDigest, key })).toMatchObject({ changed: false });
    await admin.close();

    const anonymous = new AttestationServiceClient(url(), { ca: caPem });
    expect(await codeOf(anonymous.fetchModelKey(weightsDigest, 'sample-ngram'))).toBe('ERR_WORKER_NOT_ATTESTED');
    const w = new AttestationServiceClient(url(), { ca: caPem });
    const identity = await w.register(goodWorkerTee, 'https://127.0.0.1:1');
    const open = async () => {
      const sealed = await w.fetchModelKey(weightsDigest, 'sample-ngram');
      return toHex(await openModelKey({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_MODEL_KEY_TO_WORKER, context: await sha256(identity.hpke.publicKey) }));
    };
    expect(await open()).toBe(toHex(key));
    expect(await codeOf(w.fetchModelKey(weightsDigest, 'other-ai-code'))).toBe('ERR_POLICY_VIOLATION');
    expect(await codeOf(w.fetchModelKey(`sha256:${'ee'.repeat(32)}`, 'sample-ngram'))).toBe('ERR_POLICY_VIOLATION');
    // Weights encrypted under it open in the worker, in memory.
    const weights = randomBytes(5000);
    expect(toHex(await decryptWeights(await encryptWeights(weights, key, 1024), fromHex(await open())))).toBe(toHex(weights));
    // Sealed: still there after a restart.
    await stop();
    await start();
    expect(await open()).toBe(toHex(key));
    expect(JSON.stringify(logged).includes(toHex(key))).toBe(false);
  });
});

describe('revocation', () => {
  async function revokeBody(by: TestOwner, workerId: string, opts: { timestamp?: number; identityOnly?: boolean } = {}) {
    const head = Buffer.from((await httpJson(agent, 'GET', `${url()}/v1/manifest`)).json.head, 'hex');
    const fields = { workerId, identityOnly: opts.identityOnly ?? false, timestamp: opts.timestamp ?? Date.now(), manifestHead: new Uint8Array(head) };
    const signature = await signOwnerRequest(by.privateKey, PURPOSE_WORKER_REVOKE, fields);
    return { workerId, identityOnly: fields.identityOnly, timestamp: fields.timestamp, manifestHead: toHex(fields.manifestHead), ownerId: by.id, signature: toBase64Url(signature) };
  }

  it('an owner revokes a worker: no more secrets, and its machine cannot register again; others cannot', async () => {
    const client = new AttestationServiceClient(url(), { ca: caPem });
    const identity = await client.register(goodWorkerTee, 'https://127.0.0.1:1');
    const { sid, secret } = await submitSecret(agent, url(), policy);
    expect((await client.fetchSecret(sid)).sid.length).toBe(16);
    const mallory = await makeOwner('mallory');
    const byMallory = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, await revokeBody(mallory, identity.workerId));
    expect(byMallory.json.error.code).toBe('ERR_POLICY_VIOLATION');
    const forged = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, { ...(await revokeBody(mallory, identity.workerId)), ownerId: owner.id });
    expect(forged.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    const stale = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, await revokeBody(owner, identity.workerId, { timestamp: Date.now() - 3600_000 }));
    expect(stale.json.error.code).toBe('ERR_EXPIRED');
    const unsigned = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, { ...(await revokeBody(owner, identity.workerId)), signature: undefined });
    expect(unsigned.json.error.code).toBe('ERR_SIGNATURE_INVALID');
    const ok = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, await revokeBody(owner, identity.workerId));
    expect(ok.status).toBe(200);
    expect(ok.json.machineRevoked).toBe(true);
    expect(await codeOf(client.fetchSecret(sid))).toBe('ERR_REVOKED');
    expect(await codeOf(client.register(goodWorkerTee, 'https://127.0.0.1:1'))).toBe('ERR_REVOKED');
    // Durable: still revoked after a restart.
    await stop();
    await start();
    expect(await codeOf(client.fetchSecret(sid))).toBe('ERR_REVOKED');
    const listed = (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.filter((w: { workerId: string }) => w.workerId === identity.workerId);
    expect(listed.every((w: { revoked: boolean }) => w.revoked)).toBe(true);
    await client.close();
    expect(encodingsOf(secret).some((s) => JSON.stringify(logged).includes(s))).toBe(false);
  });
});

describe('logs', () => {
  it('never carry a secret, in any encoding', async () => {
    const { secret } = await submitSecret(agent, url(), policy);
    const text = JSON.stringify(logged);
    expect(logged.some((e) => e.event === 'secret-accepted')).toBe(true);
    for (const enc of encodingsOf(secret)) expect(text.includes(enc)).toBe(false);
  });
});
