/**
 * A secret follows a later manifest only on its holder's allowance: in-process service over real HTTPS
 * and mutual TLS, the simulated TEE. Without an allowance a worker admitted under the new manifest gets
 * ERR_UNKNOWN_SECRET; a forged, backward or foreign-head allowance is refused; an allowance survives a
 * restart; and the SDK signs one only for an update that admits nothing new.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch as undiciFetch, request, type Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, sha256, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { LABEL_SECRET_TO_WORKER } from '../shared/protocol/constants.ts';
import { openSecret } from '../shared/protocol/inference-secret.ts';
import { importInferenceSecret } from '../shared/protocol/request-keys.ts';
import {
  deriveSecretAllowanceKey,
  encodeSecretAllowance,
  SECRET_ALLOWANCE_CONTENT_TYPE,
  signSecretAllowance,
  type SecretAllowanceFields,
} from '../shared/protocol/secret-allowance.ts';
import { AttestationServiceClient, type WorkerIdentity } from '../backend/as-client.ts';
import { ensureLocalPki } from '../client/cli/local-deployment/local-pki.ts';
import { ObscuraSession } from '../client/sdk/session.ts';
import { parseClientPolicy } from '../client/sdk/policy.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { openSimulatedSnpTee } from '../worker-os/tee-sim/index.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import { InProcessService, caAgent, fetchVerifiedBundle, makeOwner, putManifest, submitSecret, testManifest, type ServicePolicy, type TestOwner } from '../test/as/fixtures.ts';
import { openAttestationService } from './service.ts';

let dir: string;
let tls: { certPem: string; keyPem: string };
let caPem: string;
let agent: Agent;
let rootPem: string;
let workerTee: TeeProvider;
const serviceMeasurement = randomBytes(48);
const workerMeasurement = randomBytes(48);
let owner: TestOwner;
let policy: ServicePolicy;
let manifest: Manifest;
const logged: Record<string, unknown>[] = [];
const as = new InProcessService(async () => {
  const tee = await simulatedSnpProvider({ hardwareDir: join(dir, 'tee'), measurement: serviceMeasurement });
  return openAttestationService({ tee, measurement: serviceMeasurement, stateDir: join(dir, 'as'), tlsCertPem: tls.certPem, log: (e) => logged.push(e) });
}, () => tls);
const start = () => as.start();
const stop = () => as.stop();
const url = () => as.url;
const head = () => as.service.ctx.manifests.head;
const codeOf = async (p: Promise<unknown>) => p.then(() => undefined, (e) => (e instanceof ObscuraError ? e.code : String(e)));

/** Update the manifest (signed by the owner over the current head). */
async function update(next: Manifest): Promise<void> {
  const res = await putManifest(agent, url(), next, owner, head());
  expect(res.status).toBe(200);
  manifest = next;
}

async function registeredWorker(): Promise<{ client: AttestationServiceClient; identity: WorkerIdentity }> {
  const client = new AttestationServiceClient(url(), { ca: caPem });
  return { client, identity: await client.register(workerTee, 'https://127.0.0.1:1') };
}

async function released(w: { client: AttestationServiceClient; identity: WorkerIdentity }, sid: Uint8Array): Promise<string> {
  const sealed = await w.client.fetchSecret(sid);
  return toHex(await openSecret({ sealed, recipientKey: w.identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(w.identity.hpke.publicKey) }));
}

async function postAllowance(secret: Uint8Array, fields: SecretAllowanceFields, opts: { tamper?: boolean } = {}): Promise<{ status: number; json: any }> {
  const allowance = await signSecretAllowance(await deriveSecretAllowanceKey(await importInferenceSecret(secret)), fields);
  if (opts.tamper) allowance.tag[0] ^= 1;
  const res = await request(`${url()}/v1/secrets/allow`, { method: 'POST', dispatcher: agent, headers: { 'content-type': SECRET_ALLOWANCE_CONTENT_TYPE }, body: encodeSecretAllowance(allowance) });
  return { status: res.statusCode, json: await res.body.json() };
}

/** The same manifest with a shorter replay window: admits nothing new. */
const narrowed = (m: Manifest): Manifest => ({ ...m, limits: { ...m.limits, replayWindowMs: m.limits.replayWindowMs - 1000 } });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-allow-'));
  const pki = await ensureLocalPki(dir);
  caPem = pki.caPem;
  tls = { certPem: readFileSync(pki.servers['attestation-service'].certPath, 'utf8'), keyPem: readFileSync(pki.servers['attestation-service'].keyPath, 'utf8') };
  agent = caAgent(caPem);
  rootPem = (await openSimulatedSnpTee({ dir: join(dir, 'tee') })).arkPem;
  workerTee = await simulatedSnpProvider({ hardwareDir: join(dir, 'tee'), measurement: workerMeasurement });
  owner = await makeOwner('alice');
  policy = { rootPem, measurementHex: toHex(serviceMeasurement) };
  await start();
  manifest = testManifest({ rootPems: [rootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] });
  expect((await putManifest(agent, url(), manifest, owner)).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await stop();
  await agent?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the service', () => {
  it('releases a secret under a later head only once its holder allowed it, and keeps that across a restart', async () => {
    const sub = await submitSecret(agent, url(), policy);
    expect(sub.status).toBe(201);
    const sealedUnder = head();
    await update(narrowed(manifest));
    const worker = await registeredWorker();
    expect(await codeOf(released(worker, sub.sid))).toBe('ERR_UNKNOWN_SECRET');

    const ok = await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: head() });
    expect(ok).toMatchObject({ status: 200, json: { sid: toHex(sub.sid), seq: 1 } });
    expect(await released(worker, sub.sid)).toBe(toHex(sub.secret));
    // Allowing it again changes nothing.
    expect((await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: head() })).status).toBe(200);
    expect(logged.filter((e) => e.event === 'secret-allowed' && e.sid === toHex(sub.sid)).map((e) => e.changed)).toEqual([true, false]);

    await stop();
    await start();
    expect(await released(worker, sub.sid)).toBe(toHex(sub.secret));
    // The allowance names one head: the next update needs another.
    await update(narrowed(manifest));
    const next = await registeredWorker();
    expect(await codeOf(released(next, sub.sid))).toBe('ERR_UNKNOWN_SECRET');
    expect((await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: head() })).status).toBe(200);
    expect(await released(next, sub.sid)).toBe(toHex(sub.secret));
  });

  it('refuses an allowance not made with the secret, for a head the chain never reached, backwards, or from another head', async () => {
    const old = as.service.ctx.manifests.checkpoint(0)!.head; // a head before the secret's
    const sub = await submitSecret(agent, url(), policy);
    expect(sub.status).toBe(201);
    const sealedUnder = head();
    await update(narrowed(manifest));
    const worker = await registeredWorker();
    const other = await submitSecret(agent, url(), policy); // another client's secret, under the new head

    const refusals = [
      await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: head() }, { tamper: true }),
      await postAllowance(other.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: head() }),
      await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: randomBytes(32) }),
      await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: old }),
      await postAllowance(sub.secret, { sid: sub.sid, fromHead: sealedUnder, toHead: sealedUnder }),
      await postAllowance(sub.secret, { sid: sub.sid, fromHead: old, toHead: head() }),
      await postAllowance(sub.secret, { sid: randomBytes(16), fromHead: sealedUnder, toHead: head() }),
    ];
    expect(refusals.map((r) => [r.status, r.json.error.code])).toEqual([
      [403, 'ERR_SIGNATURE_INVALID'],
      [403, 'ERR_SIGNATURE_INVALID'],
      [403, 'ERR_VALUE_MISMATCH'],
      [403, 'ERR_VALUE_MISMATCH'],
      [403, 'ERR_VALUE_MISMATCH'],
      [403, 'ERR_VALUE_MISMATCH'],
      expect.arrayContaining([expect.any(Number), 'ERR_UNKNOWN_SECRET']),
    ]);
    expect(await codeOf(released(worker, sub.sid))).toBe('ERR_UNKNOWN_SECRET');
    // Malformed allowances get a typed error, not a crash.
    const bad = await request(`${url()}/v1/secrets/allow`, { method: 'POST', dispatcher: agent, headers: { 'content-type': SECRET_ALLOWANCE_CONTENT_TYPE }, body: new Uint8Array([0xa1, 0x63]) });
    expect([bad.statusCode, ((await bad.body.json()) as any).error.code]).toEqual([400, 'ERR_MALFORMED']);
  });
});

describe('the SDK', () => {
  const warnings: string[] = [];
  let session: ObscuraSession;

  beforeAll(() => {
    session = new ObscuraSession({
      endpoint: url(),
      policy: parseClientPolicy({ version: 1, service: { platform: 'sev-snp', trustedRoots: [rootPem], measurements: [toHex(serviceMeasurement)] }, maxBundleAgeMs: 60_001 }),
      fetch: ((u: string, init?: RequestInit) => undiciFetch(u, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
      onWarning: (w) => warnings.push(w),
      // A bundle is re-fetched when less than a minute of its age remains: with a 60 001 ms limit, always.
    });
  });

  it('lets its secret follow an update that admits nothing new, and a worker under it gets the secret', async () => {
    const first = await session.secret();
    await update(narrowed(manifest));
    await session.verified();
    expect(warnings.at(-1)).toContain('the current secret follows it');
    const again = await session.secret();
    expect(toHex(again.sid)).toBe(toHex(first.sid));
    const worker = await registeredWorker();
    await worker.client.fetchSecret(first.sid); // released, sealed to the worker's key
  });

  it('does not for an update that admits new AI code: the secret stays behind and a new one is exchanged', async () => {
    const first = await session.secret();
    const extra = { ...manifest.aiCode[0], name: 'other-code', imageDigest: `sha256:${'ee'.repeat(32)}` };
    await update({ ...manifest, aiCode: [...manifest.aiCode, extra] });
    await session.verified();
    expect(warnings.some((w) => w.includes('$.aiCode[1]: new AI code other-code'))).toBe(true);
    const worker = await registeredWorker();
    expect(await codeOf(worker.client.fetchSecret(first.sid))).toBe('ERR_UNKNOWN_SECRET');
    const fresh = await session.secret();
    expect(toHex(fresh.sid)).not.toBe(toHex(first.sid));
    await worker.client.fetchSecret(fresh.sid);
  });
});
