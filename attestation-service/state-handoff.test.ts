/**
 * Moving the service's state to a new (simulated) machine by mutual attestation, in-process over real
 * HTTPS: A on machine 1 hands its state to B on machine 2, whose measurement the manifest lists. B
 * then serves the same chain, keys, workers, secrets and model keys, and A refuses every change. The
 * refusals (B's measurement not listed, B's evidence under an untrusted root, a replayed challenge, a
 * swapped key, a state sealed to another key, a source that fails B's checks) release nothing and
 * leave A as it was; no log line carries the state or a secret.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request, type Agent as AgentType } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, fromHex, randomBytes, sha256, toBase64Url, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { manifestDigest } from '../shared/manifest/chain.ts';
import { PURPOSE_WORKER_REVOKE, signOwnerRequest } from '../shared/manifest/owner-request.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';
import { LABEL_MODEL_KEY_TO_WORKER, LABEL_SECRET_TO_WORKER } from '../shared/protocol/constants.ts';
import { generateHpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import { openSecret, parseSealedSecret } from '../shared/protocol/inference-secret.ts';
import { openModelKey } from '../shared/protocol/model-key.ts';
import { AttestationServiceClient, type WorkerIdentity } from '../backend/as-client.ts';
import { AdminClient } from '../client/cli/commands/manifest/admin-client.ts';
import { uploadModelKey } from '../client/cli/commands/manifest/model-keys.ts';
import { ensureLocalPki } from '../client/cli/local-deployment/local-pki.ts';
import { parseClientPolicy } from '../client/sdk/policy.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { openSimulatedSnpTee } from '../worker-os/tee-sim/index.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import { closeInProcess, listenInProcess, caAgent, encodingsOf, fetchVerifiedBundle, httpJson, makeOwner, putManifest, registrationBody, postRegistration, submitSecret, testManifest, type TestOwner } from '../test/as/fixtures.ts';
import { freePort } from '../test/e2e/harness.ts';
import { SEALING_PURPOSE, SealedStateFile } from './sealed-state.ts';
import { openAttestationService, type OpenedService } from './service.ts';
import type { ServiceStateSnapshot } from './service-state.ts';
import { openHandedOverState, prepareHandoffRequest, receiveStateHandoff, StateHandoffConnection } from './state-handoff.ts';

interface Tls {
  certPem: string;
  keyPem: string;
  caPem: string;
}
interface Running {
  name: string;
  service: OpenedService;
  server: Server;
  url: string;
  tls: Tls;
}

let dir: string;
let tlsA: Tls;
let tlsB: Tls;
const roots: Record<'m1' | 'm2' | 'm3', string> = { m1: '', m2: '', m3: '' };
const asMeasurement = randomBytes(48);
const workerMeasurement = randomBytes(48);
let owner: TestOwner;
let manifest: Manifest;
const logged: Record<string, unknown>[] = [];
const running: Running[] = [];
let a: Running;
let agentA: AgentType;

const machine = (m: keyof typeof roots) => join(dir, m);
const serviceTee = (m: keyof typeof roots, measurement = asMeasurement) => simulatedSnpProvider({ hardwareDir: machine(m), measurement });
const codeOf = async (p: Promise<unknown>) => p.then(() => 'accepted', (e) => (e instanceof ObscuraError ? e.code : String(e)));
const logOf = (name: string) => logged.filter((e) => e.as === name);

async function pkiTls(sub: string): Promise<Tls> {
  const pki = await ensureLocalPki(join(dir, sub));
  return { certPem: readFileSync(pki.servers['attestation-service'].certPath, 'utf8'), keyPem: readFileSync(pki.servers['attestation-service'].keyPath, 'utf8'), caPem: pki.caPem };
}

async function startService(input: { name: string; tee: TeeProvider; measurement?: Uint8Array; tls: Tls; port?: number; adopt?: () => Promise<ServiceStateSnapshot> }): Promise<Running> {
  const service = await openAttestationService({
    tee: input.tee,
    measurement: input.measurement ?? asMeasurement,
    stateDir: join(dir, `state-${input.name}`),
    tlsCertPem: input.tls.certPem,
    log: (e) => logged.push({ as: input.name, ...e }),
    adopt: input.adopt,
  });
  const { server, url } = await listenInProcess(service, input.tls, input.port);
  const r: Running = { name: input.name, service, server, url, tls: input.tls };
  running.push(r);
  return r;
}

async function stopService(r: Running): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await closeInProcess(r);
}

/** A source on machine 1 with the manifest set (extra sources for the refusal cases). */
async function startSource(name: string, measurement = asMeasurement): Promise<Running> {
  const r = await startService({ name, tee: await serviceTee('m1', measurement), measurement, tls: tlsA });
  const agent = caAgent(tlsA.caPem);
  expect((await putManifest(agent, r.url, manifest, owner)).status).toBe(200);
  await agent.close();
  return r;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-handoff-'));
  [tlsA, tlsB] = await Promise.all([pkiTls('pki-a'), pkiTls('pki-b')]);
  const tees = await Promise.all((['m1', 'm2', 'm3'] as const).map((m) => openSimulatedSnpTee({ dir: machine(m) })));
  [roots.m1, roots.m2, roots.m3] = tees.map((t) => t.arkPem);
  owner = await makeOwner('alice');
  // Machines 1 and 2 are trusted (as two AMD chips under AMD's root would be); machine 3 is not.
  manifest = parseManifest({
    ...testManifest({ rootPems: [roots.m1, roots.m2], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] }),
    attestationService: { measurements: [toHex(asMeasurement)] },
  });
  a = await startSource('a');
  agentA = caAgent(tlsA.caPem);
}, 120_000);

afterAll(async () => {
  for (const r of [...running]) await stopService(r).catch(() => undefined);
  await agentA?.close();
  await rm(dir, { recursive: true, force: true });
});

// What A holds before the handoff, to find again at B.
let secret: { sid: Uint8Array; secret: Uint8Array };
let workerAtA: { client: AttestationServiceClient; identity: WorkerIdentity };
const modelKey = randomBytes(32);

describe('before: A on machine 1 holds a worker, a secret and a model key', () => {
  it('admits a worker, takes a secret and a model key', async () => {
    const client = new AttestationServiceClient(a.url, { ca: tlsA.caPem });
    workerAtA = { client, identity: await client.register(await simulatedSnpProvider({ hardwareDir: machine('m1'), measurement: workerMeasurement }), 'https://127.0.0.1:1') };
    const s = await submitSecret(agentA, a.url, { rootPem: roots.m1, measurementHex: toHex(asMeasurement) });
    expect(s.status).toBe(201);
    secret = s;
    const admin = new AdminClient({ asUrl: a.url, caPem: tlsA.caPem, policyPath: '', stateDir: dir });
    const attested = await admin.attest(parseClientPolicy({ version: 1, service: { platform: 'sev-snp', trustedRoots: [roots.m1], measurements: [toHex(asMeasurement)] } }));
    expect(await uploadModelKey({ client: admin, attested, signer: owner, weightsDigest: manifest.models[0].weightsDigest, key: modelKey })).toMatchObject({ changed: true });
    await admin.close();
  });
});

describe('refusals: nothing is released and A stays as it was', () => {
  const headA = async () => (await httpJson(agentA, 'GET', `${a.url}/v1/manifest`)).json.head as string;
  let headBefore: string;
  beforeAll(async () => {
    headBefore = await headA();
  });

  /** A's side of the exchange driven by hand, to send what an honest receiver would never send. */
  async function handOffByHand(tee: TeeProvider, tamper: (req: Awaited<ReturnType<typeof prepareHandoffRequest>>['request']) => unknown = () => undefined, challenge?: Uint8Array) {
    const { connection, source } = await StateHandoffConnection.open({ from: a.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1] });
    try {
      const prepared = await prepareHandoffRequest({ tee, challenge: challenge ?? (await connection.challenge()), sourceCoreSha256: source.coreSha256, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1' });
      tamper(prepared.request);
      return await connection.handOff(prepared.request);
    } finally {
      await connection.close();
    }
  }

  it("a receiver whose measurement the manifest does not list: A refuses it (and B's own check refuses to ask)", async () => {
    const other = randomBytes(48);
    expect(await codeOf(handOffByHand(await serviceTee('m2', other)))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    const early = receiveStateHandoff({ from: a.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1], tee: await serviceTee('m2', other), measurement: other, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1', log: () => undefined });
    expect(await codeOf(early)).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
  });

  it('a receiver whose evidence chains to a root the manifest does not trust', async () => {
    const untrusted = receiveStateHandoff({ from: a.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1], tee: await serviceTee('m3'), measurement: asMeasurement, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1', log: () => undefined });
    expect(await codeOf(untrusted)).toBe('ERR_UNTRUSTED_ROOT');
  }, 20_000);

  it('a replayed challenge (used by a refused attempt), or one A never issued', async () => {
    const challenge = fromBase64Url((await httpJson(agentA, 'POST', `${a.url}/v1/handoff/challenge`)).json.challenge);
    expect(await codeOf(handOffByHand(await serviceTee('m3'), undefined, challenge))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(handOffByHand(await serviceTee('m2'), undefined, challenge))).toBe('ERR_REPLAY');
    expect(await codeOf(handOffByHand(await serviceTee('m2'), undefined, randomBytes(32)))).toBe('ERR_REPLAY');
  });

  it('a man in the middle swapping in his own HPKE key (or another endpoint): the evidence does not bind it', async () => {
    const mallory = await generateHpkeKeyPair();
    expect(await codeOf(handOffByHand(await serviceTee('m2'), (req) => (req.hpkePublicKey = mallory.publicKey)))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(handOffByHand(await serviceTee('m2'), (req) => (req.endpoint = 'https://mallory.example')))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(handOffByHand(await serviceTee('m2'), (req) => (req.sourceCoreSha256 = randomBytes(32))))).toBe('ERR_VALUE_MISMATCH');
  });

  it('B refuses a source whose evidence fails its checks: an untrusted root, or a measurement the manifest does not list', async () => {
    const tee = await serviceTee('m2');
    const base = { tlsCaPem: tlsA.caPem, tee, measurement: asMeasurement, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1', log: () => undefined };
    expect(await codeOf(receiveStateHandoff({ ...base, from: a.url, trustedRootsPem: [roots.m3] }))).toBe('ERR_UNTRUSTED_ROOT');
    const rogue = await startSource('rogue', randomBytes(48));
    expect(await codeOf(receiveStateHandoff({ ...base, from: rogue.url, trustedRootsPem: [roots.m1] }))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    expect(logOf('rogue').some((e) => String(e.event).startsWith('handoff'))).toBe(false); // never asked
    await stopService(rogue);
  });

  it('a state sealed to another key does not open (what a relay in the middle would hold)', async () => {
    const spare = await startSource('spare');
    const { connection, source } = await StateHandoffConnection.open({ from: spare.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1] });
    const prepared = await prepareHandoffRequest({ tee: await serviceTee('m2'), challenge: await connection.challenge(), sourceCoreSha256: source.coreSha256, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1' });
    const sealed = await connection.handOff(prepared.request);
    await connection.close();
    const other = await generateHpkeKeyPair(prepared.key.suite);
    expect(await codeOf(openHandedOverState({ sealed, key: other, evidenceSha256: prepared.evidenceSha256, source, ownMeasurement: asMeasurement }))).toBe('ERR_OPEN_FAILED');
    const opened = await openHandedOverState({ sealed, key: prepared.key, evidenceSha256: prepared.evidenceSha256, source, ownMeasurement: asMeasurement });
    expect(opened.manifests.entries.length).toBe(1);
    await stopService(spare);
  });

  it('a handoff waits for a change under way, carries it, and turns new changes away meanwhile', async () => {
    const spare = await startSource('spare-drain');
    const gate = spare.service.ctx.handoff!;
    const release = gate.admit(); // a state-changing call in progress
    const { connection, source } = await StateHandoffConnection.open({ from: spare.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1] });
    const prepared = await prepareHandoffRequest({ tee: await serviceTee('m2'), challenge: await connection.challenge(), sourceCoreSha256: source.coreSha256, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:1' });
    let settled = false;
    const sealing = connection.handOff(prepared.request).finally(() => (settled = true));
    // Wait until the handoff freezes the state (new changes then get ERR_UPSTREAM).
    let frozen = '';
    for (let i = 0; i < 500 && !frozen; i++) {
      try {
        gate.admit()();
        await new Promise((r) => setTimeout(r, 10));
      } catch (e) {
        frozen = (e as ObscuraError).code;
      }
    }
    expect(frozen).toBe('ERR_UPSTREAM');
    expect(settled).toBe(false); // it cannot finish while the change is under way
    const late = { sid: randomBytes(16), secret: randomBytes(32) };
    const held = { secret: late.secret, manifestHead: spare.service.ctx.manifests.head, expiresAt: Date.now() + 600_000, allowedHeads: [] };
    spare.service.ctx.secrets.put(late.sid, held as Parameters<typeof spare.service.ctx.secrets.put>[1]);
    release();
    const opened = await openHandedOverState({ sealed: await sealing, key: prepared.key, evidenceSha256: prepared.evidenceSha256, source, ownMeasurement: asMeasurement });
    await connection.close();
    expect(opened.secrets.some((s) => toHex(s.sid) === toHex(late.sid) && toHex(s.secret) === toHex(late.secret))).toBe(true);
    expect(await codeOf(Promise.resolve().then(() => gate.admit()))).toBe('ERR_SERVICE_MOVED');
    await stopService(spare);
  });

  it('A is unchanged: not handed off, same head, still taking changes', async () => {
    expect((await httpJson(agentA, 'GET', `${a.url}/v1/handoff`)).json).toEqual({ handedOff: false });
    expect(a.service.ctx.handoff?.record).toBeUndefined();
    expect(await headA()).toBe(headBefore);
    expect(logOf('a').filter((e) => e.event === 'handoff-sent')).toEqual([]);
    expect(logOf('a').filter((e) => e.event === 'handoff-refused').length).toBeGreaterThanOrEqual(7);
    expect((await submitSecret(agentA, a.url, { rootPem: roots.m1, measurementHex: toHex(asMeasurement) })).status).toBe(201);
  });
});

describe('a handoff from A (machine 1) to B (machine 2)', () => {
  let b: Running;
  let agentB: AgentType;
  let received: ServiceStateSnapshot;
  let before: Awaited<ReturnType<typeof fetchVerifiedBundle>>;
  let checkpointBefore: unknown;
  const policyOf = (m: keyof typeof roots) => ({ rootPem: roots[m], measurementHex: toHex(asMeasurement) });

  beforeAll(async () => {
    before = await fetchVerifiedBundle(agentA, a.url, policyOf('m1'));
    checkpointBefore = (await httpJson(agentA, 'GET', `${a.url}/v1/manifest/checkpoint`)).json;
    const port = await freePort();
    const tee = await serviceTee('m2');
    b = await startService({
      name: 'b',
      tee,
      tls: tlsB,
      port,
      adopt: async () => {
        received = await receiveStateHandoff({ from: a.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1], tee, measurement: asMeasurement, tlsCertPem: tlsB.certPem, endpoint: `https://127.0.0.1:${port}`, log: (e) => logged.push({ as: 'b', ...e }) });
        return received;
      },
    });
    agentB = caAgent(tlsB.caPem);
  }, 60_000);

  afterAll(async () => {
    await agentB?.close();
  });

  it('B serves the same chain head, checkpoint, checkpoint key, HPKE keys and mesh CA, under its own evidence and TLS key', async () => {
    expect(b.service.origin).toBe('handed-over');
    const after = await fetchVerifiedBundle(agentB, b.url, policyOf('m2'));
    expect(toHex(after.verified.manifestHead)).toBe(toHex(before.verified.manifestHead));
    expect(toHex(after.verified.core.checkpointKey)).toBe(toHex(before.verified.core.checkpointKey));
    expect(after.verified.core.hpke.map((h) => toHex(h.publicKey))).toEqual(before.verified.core.hpke.map((h) => toHex(h.publicKey)));
    expect(toHex(after.verified.core.meshCaSha256)).toBe(toHex(before.verified.core.meshCaSha256));
    expect(toHex(after.verified.core.tlsKeySha256)).not.toBe(toHex(before.verified.core.tlsKeySha256));
    expect(toHex(after.verified.facts.chipId)).not.toBe(toHex(before.verified.facts.chipId));
    expect((await httpJson(agentB, 'GET', `${b.url}/v1/manifest/checkpoint`)).json).toEqual(checkpointBefore);
  });

  it('a secret exchanged at A is released by B to a worker B certified, and to the worker A certified', async () => {
    const client = new AttestationServiceClient(b.url, { ca: tlsB.caPem });
    const identity = await client.register(await simulatedSnpProvider({ hardwareDir: machine('m2'), measurement: workerMeasurement }), 'https://127.0.0.1:1');
    const sealed = await client.fetchSecret(secret.sid);
    const opened = await openSecret({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(identity.hpke.publicKey) });
    expect(toHex(opened)).toBe(toHex(secret.secret));
    const modelSealed = await client.fetchModelKey(manifest.models[0].weightsDigest, 'sample-ngram');
    const model = await openModelKey({ sealed: modelSealed, recipientKey: identity.hpke.privateKey, label: LABEL_MODEL_KEY_TO_WORKER, context: await sha256(identity.hpke.publicKey) });
    expect(toHex(model)).toBe(toHex(modelKey));
    await client.close();
    // The worker A admitted keeps its mesh certificate: B holds the same CA and the same admissions.
    const old = workerAtA.identity;
    const mtls = new Agent({ connect: { ca: tlsB.caPem, cert: old.certPem, key: old.certKey.export({ type: 'pkcs8', format: 'pem' }) as string } });
    const res = await request(`${b.url}/v1/workers/secrets/${toHex(secret.sid)}`, { dispatcher: mtls });
    expect(res.statusCode).toBe(200);
    const again = await openSecret({ sealed: parseSealedSecret(new Uint8Array(await res.body.arrayBuffer())), recipientKey: old.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(old.hpke.publicKey) });
    expect(toHex(again)).toBe(toHex(secret.secret));
    await mtls.close();
  });

  async function refusalsAt(r: Running, agent: AgentType) {
    const head = fromHex((await httpJson(agent, 'GET', `${r.url}/v1/manifest`)).json.head);
    const next = parseManifest({ ...manifest, limits: { ...manifest.limits, replayWindowMs: 123_000 } });
    const revokeFields = { workerId: workerAtA.identity.workerId, identityOnly: false, timestamp: Date.now(), manifestHead: head };
    const revokeSignature = await signOwnerRequest(owner.privateKey, PURPOSE_WORKER_REVOKE, revokeFields);
    const answers = [
      await putManifest(agent, r.url, next, owner, head),
      await submitSecret(agent, r.url, policyOf('m1')),
      await postRegistration(agent, r.url, await registrationBody(agent, r.url, await simulatedSnpProvider({ hardwareDir: machine('m1'), measurement: workerMeasurement }))),
      await httpJson(agent, 'POST', `${r.url}/v1/workers/revoke`, { ...revokeFields, manifestHead: toHex(head), ownerId: owner.id, signature: toBase64Url(revokeSignature) }),
    ];
    return { answers, head };
  }

  it('A refuses every state change (and every release) with an error naming B; read-only calls still work', async () => {
    const { answers, head } = await refusalsAt(a, agentA);
    for (const ans of answers) {
      expect(ans.status).toBe(410);
      expect(ans.json.error.code).toBe('ERR_SERVICE_MOVED');
      expect(ans.json.error.message).toContain(b.url);
    }
    expect(await codeOf(workerAtA.client.fetchSecret(secret.sid))).toBe('ERR_SERVICE_MOVED');
    expect((await httpJson(agentA, 'GET', `${a.url}/v1/handoff`)).json).toMatchObject({ handedOff: true, to: b.url, measurement: toHex(asMeasurement) });
    expect(toHex(head)).toBe(toHex(before.verified.manifestHead));
    expect((await fetchVerifiedBundle(agentA, a.url, policyOf('m1'))).verified.manifestHead).toEqual(before.verified.manifestHead);
    // A second handoff is refused too: the state has one live holder.
    const tee = await serviceTee('m2');
    const second = receiveStateHandoff({ from: a.url, tlsCaPem: tlsA.caPem, trustedRootsPem: [roots.m1], tee, measurement: asMeasurement, tlsCertPem: tlsB.certPem, endpoint: 'https://127.0.0.1:2', log: () => undefined });
    expect(await codeOf(second)).toBe('ERR_SERVICE_MOVED');
  });

  it('A still refuses after a restart (the handoff is in its sealed state)', async () => {
    await stopService(a);
    a = await startService({ name: 'a', tee: await serviceTee('m1'), tls: tlsA });
    const { answers } = await refusalsAt(a, agentA);
    expect(answers.map((x) => x.json.error?.code)).toEqual(['ERR_SERVICE_MOVED', 'ERR_SERVICE_MOVED', 'ERR_SERVICE_MOVED', 'ERR_SERVICE_MOVED']);
    expect(answers[0].json.error.message).toContain(b.url);
  });

  it("B sealed the state under its own machine's key (A's machine cannot open it), restarts from it, and takes changes", async () => {
    const bDir = join(dir, 'state-b');
    const asMachine1 = await SealedStateFile.create(bDir, await (await serviceTee('m1')).sealingKey(SEALING_PURPOSE), asMeasurement);
    await expect(asMachine1.read()).rejects.toMatchObject({ problem: 'other-machine' });
    const port = Number(new URL(b.url).port);
    await stopService(b);
    b = await startService({ name: 'b', tee: await serviceTee('m2'), tls: tlsB, port });
    expect(b.service.origin).toBe('restored');
    const head = fromHex((await httpJson(agentB, 'GET', `${b.url}/v1/manifest`)).json.head);
    const next = parseManifest({ ...manifest, limits: { ...manifest.limits, replayWindowMs: 123_000 } });
    const upd = await putManifest(agentB, b.url, next, owner, head);
    expect(upd.status).toBe(200);
    expect(upd.json.seq).toBe(1);
    expect(toHex(await manifestDigest(next))).toBe(toHex(b.service.ctx.manifests.chain[1].manifestSha256));
  });

  it('a service that holds a state never asks for another', async () => {
    let asked = false;
    const again = openAttestationService({ tee: await serviceTee('m1'), measurement: asMeasurement, stateDir: join(dir, 'state-spare'), tlsCertPem: tlsA.certPem, log: () => undefined, adopt: async () => ((asked = true), received) });
    expect(await codeOf(again)).toBe('ERR_USAGE');
    expect(asked).toBe(false);
  });

  it('no log line carries a secret, a model key or any key of the state', () => {
    expect(logOf('a').filter((e) => e.event === 'handoff-sent')).toHaveLength(1);
    expect(logOf('b').filter((e) => e.event === 'handoff-received')).toHaveLength(1);
    const text = JSON.stringify(logged);
    const secrets = [
      secret.secret,
      modelKey,
      ...received.keys.hpkeSeeds.map((s) => s.seed),
      received.keys.meshCa.privateKeyPkcs8,
      received.keys.checkpointKeyPkcs8,
      ...received.secrets.map((s) => s.secret),
    ];
    for (const s of secrets) for (const enc of encodingsOf(s)) expect(text.includes(enc)).toBe(false);
  });
});
