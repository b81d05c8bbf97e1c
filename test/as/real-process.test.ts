/**
 * The attestation service as the real process `obscura up` starts (`node --import tsx
 * attestation-service/main.ts --state-dir ...`), driven by the real `obscura manifest` CLI: the admin
 * flow with its exit codes, a restart between operations (chain, workers and secrets survive), a
 * damaged state file (refused, left as it is), and a log without secrets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, sha256, toHex } from '../../shared/bytes.ts';
import { LABEL_SECRET_TO_WORKER } from '../../shared/protocol/constants.ts';
import { openSecret } from '../../shared/protocol/inference-secret.ts';
import { AttestationServiceClient } from '../../backend/as-client.ts';
import { explainStateRefusal, attestationServiceStateDir } from '../../client/cli/commands/manifest/local-admin.ts';
import { ensureLocalPki } from '../../client/cli/local-deployment/local-pki.ts';
import { ensureOwnerKey, localClientPolicy, referenceServiceMeasurement } from '../../client/cli/local-deployment/local-manifest.ts';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { ensureSimulatedHardware, simulatedSnpProvider } from '../../worker-os/tee/simulated-snp.ts';
import { freePort } from '../e2e/harness.ts';
import { caAgent, encodingsOf, fetchVerifiedBundle, httpJson, makeOwner, submitSecret, testManifest } from './fixtures.ts';

let stateDir: string;
let asUrl: string;
let port: number;
let caPem: string;
let rootPem: string;
let as: { child: ChildProcess; exited: Promise<number | null> } | undefined;
let log = '';
const workerMeasurement = randomBytes(48);

function startAs(): { child: ChildProcess; exited: Promise<number | null> } {
  const pki = join(stateDir, 'tls');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'attestation-service/main.ts', '--port', String(port), '--tls-cert', join(pki, 'attestation-service.pem'), '--tls-key', join(pki, 'attestation-service.key'), '--tee-dir', join(stateDir, 'tee-sim'), '--state-dir', attestationServiceStateDir(stateDir)],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  return { child, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}

async function up(): Promise<void> {
  as = startAs();
  const agent = caAgent(caPem);
  try {
    for (let i = 0; i < 200; i++) {
      if (as.child.exitCode !== null) throw new Error(`the service exited (${as.child.exitCode}):\n${log}`);
      const ok = await httpJson(agent, 'GET', `${asUrl}/healthz`).then((r) => r.status === 200, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the service did not come up:\n${log}`);
  } finally {
    await agent.close();
  }
}

async function down(): Promise<void> {
  as?.child.kill('SIGTERM');
  expect(await as?.exited).toBe(0);
  as = undefined;
}

/** The real CLI, as a user runs it. */
function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'obscura.mjs'), ...args, '--state-dir', stateDir, '--as', asUrl], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'obscura-as-proc-'));
  caPem = (await ensureLocalPki(stateDir)).caPem;
  rootPem = (await ensureSimulatedHardware(join(stateDir, 'tee-sim'))).localRootPem;
  writeFileSync(join(stateDir, 'client-policy.json'), JSON.stringify(localClientPolicy(rootPem)));
  port = await freePort();
  asUrl = `https://127.0.0.1:${port}`;
  await up();
}, 60_000);

afterAll(async () => {
  as?.child.kill('SIGKILL');
  rmSync(stateDir, { recursive: true, force: true });
});

describe('the attestation service process and `obscura manifest`', () => {
  const owner = () => ensureOwnerKey(stateDir);
  const manifestFile = (name: string, replayWindowMs?: number) => async () => {
    const o = await owner();
    const path = join(stateDir, name);
    writeFileSync(path, JSON.stringify(testManifest({ rootPems: [rootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [{ ...o, privateJwk: {} }], replayWindowMs })));
    return path;
  };

  it('checks the evidence against the policy before sending anything, reports manifest problems with JSON paths, then sets by TOFU', async () => {
    const file = await manifestFile('m1.json')();
    const wrongPolicy = join(stateDir, 'wrong-policy.json');
    writeFileSync(wrongPolicy, JSON.stringify({ ...localClientPolicy(rootPem), service: { platform: 'sev-snp', trustedRoots: [rootPem], measurements: ['00'.repeat(48)] } }));
    const bad = join(stateDir, 'bad.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.platforms['sev-snp'].measurements = ['xyz'];
    delete doc.limits.replayWindowMs;
    writeFileSync(bad, JSON.stringify(doc));
    const [refused, invalid] = await Promise.all([
      cli('manifest', 'set', '--file', file, '--key', join(stateDir, 'owner-key.jwk'), '--policy', wrongPolicy),
      cli('manifest', 'set', '--file', bad, '--key', join(stateDir, 'owner-key.jwk')),
    ]);
    expect(refused.code).toBe(5);
    expect(refused.err).toMatch(/ERR_MEASUREMENT_NOT_ALLOWED/);
    const agent = caAgent(caPem);
    expect((await httpJson(agent, 'GET', `${asUrl}/v1/manifest`)).json.manifest).toBeNull();
    expect(invalid.code).toBe(2);
    expect(invalid.err).toContain('$.platforms["sev-snp"].measurements[0]');
    expect(invalid.err).toContain('$.limits.replayWindowMs');

    const set = await cli('manifest', 'set', '--file', file, '--key', join(stateDir, 'owner-key.jwk'), '--json');
    expect(set.code).toBe(0);
    expect(JSON.parse(set.out)).toMatchObject({ ok: true, seq: 0, authorizedBy: 'tofu:local-owner' });
    await agent.close();
  }, 30_000);

  it('refuses updates by a key that is not an owner (5) or that does not match the owner it claims (3), and a second first manifest (1)', async () => {
    const file = await manifestFile('m2.json', 111_000)();
    const mallory = await makeOwner('mallory');
    const malloryKey = join(stateDir, 'mallory.jwk');
    writeFileSync(malloryKey, JSON.stringify(mallory.privateJwk));
    const [notOwner, forged, again] = await Promise.all([
      cli('manifest', 'update', '--file', file, '--key', malloryKey),
      cli('manifest', 'update', '--file', file, '--key', malloryKey, '--owner', 'local-owner'),
      cli('manifest', 'set', '--file', file, '--key', join(stateDir, 'owner-key.jwk')),
    ]);
    expect([notOwner.code, forged.code, again.code]).toEqual([5, 3, 1]);
    expect(forged.err).toMatch(/ERR_SIGNATURE_INVALID/);
  }, 30_000);

  let secret: { sid: Uint8Array; secret: Uint8Array };
  let worker: AttestationServiceClient;
  let identity: Awaited<ReturnType<AttestationServiceClient['register']>>;
  const policy = () => ({ rootPem, measurementHex: referenceServiceMeasurement() });

  it('admits a worker and takes a secret', async () => {
    worker = new AttestationServiceClient(asUrl, { ca: caPem });
    identity = await worker.register(await simulatedSnpProvider({ hardwareDir: join(stateDir, 'tee-sim'), measurement: workerMeasurement }), 'https://127.0.0.1:1');
    const agent = caAgent(caPem);
    const s = await submitSecret(agent, asUrl, policy());
    expect(s.status).toBe(201);
    secret = s;
    await agent.close();
  });

  it('keeps the chain, the keys, the worker and the secret across a restart', async () => {
    const agent = caAgent(caPem);
    const before = await fetchVerifiedBundle(agent, asUrl, policy());
    await down();
    await up();
    const after = await fetchVerifiedBundle(agent, asUrl, policy());
    expect(toHex(after.verified.manifestHead)).toBe(toHex(before.verified.manifestHead));
    expect(after.verified.core.hpke.map((h) => toHex(h.publicKey))).toEqual(before.verified.core.hpke.map((h) => toHex(h.publicKey)));
    const sealed = await worker.fetchSecret(secret.sid);
    const opened = await openSecret({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(identity.hpke.publicKey) });
    expect(toHex(opened)).toBe(toHex(secret.secret));
    expect(log).toMatch(/"event":"state-opened","origin":"restored","manifestEntries":1,"workers":1,"secrets":1/);
    await agent.close();
  }, 30_000);

  it('updates as an owner over the attested head; history and checkpoint verify', async () => {
    const file = await manifestFile('m3.json', 222_000)();
    const upd = await cli('manifest', 'update', '--file', file, '--key', join(stateDir, 'owner-key.jwk'));
    expect(upd.code).toBe(0);
    expect(upd.out).toMatch(/manifest updated: entry 1/);
    const [history, checkpoint, show] = await Promise.all([cli('manifest', 'history', '--json'), cli('manifest', 'checkpoint', '--json'), cli('manifest', 'show')]);
    expect(JSON.parse(history.out).entries.map((e: { authorizedBy: string }) => e.authorizedBy)).toEqual(['tofu:local-owner', 'local-owner']);
    expect(JSON.parse(checkpoint.out)).toMatchObject({ format: 'obscura-manifest-checkpoint/1', seq: 1 });
    expect(show.out).toMatch(/replay window 222000 ms/);
    // The worker was admitted under entry 0: it must re-attest.
    expect(await worker.fetchSecret(secret.sid).then(() => 'released', (e) => e.code)).toBe('ERR_WORKER_NOT_ATTESTED');
  }, 30_000);

  it('never logs the secret', () => {
    expect(log).toMatch(/secret-accepted/);
    for (const enc of encodingsOf(secret.secret)) expect(log.includes(enc)).toBe(false);
  });

  it('`obscura worker revoke` by an owner: the worker gets no more secrets', async () => {
    identity = await worker.register(await simulatedSnpProvider({ hardwareDir: join(stateDir, 'tee-sim'), measurement: workerMeasurement }), 'https://127.0.0.1:1');
    const agent = caAgent(caPem);
    const s = await submitSecret(agent, asUrl, policy());
    expect((await worker.fetchSecret(s.sid)).sid.length).toBe(16);
    const revoked = await cli('worker', 'revoke', '--id', identity.workerId, '--key', join(stateDir, 'owner-key.jwk'), '--json');
    expect(revoked.code, revoked.err).toBe(0);
    expect(JSON.parse(revoked.out)).toMatchObject({ ok: true, workerId: identity.workerId, machineRevoked: true });
    expect(await worker.fetchSecret(s.sid).then(() => 'released', (e) => e.code)).toBe('ERR_REVOKED');
    const listed = (await httpJson(agent, 'GET', `${asUrl}/v1/workers`)).json.workers.find((w: { workerId: string }) => w.workerId === identity.workerId);
    expect(listed).toMatchObject({ revoked: true, current: false });
    await agent.close();
  }, 30_000);

  it('refuses a damaged state file, says why and what to do, and leaves it as it is', async () => {
    await down();
    const path = join(attestationServiceStateDir(stateDir), 'state.sealed');
    const good = readFileSync(path);
    for (const [bytes, problem] of [[Buffer.from(good.map((b, i) => (i === 200 ? b ^ 0x80 : b))), 'corrupt'], [good.subarray(0, good.length - 7), 'truncated']] as const) {
      writeFileSync(path, bytes);
      const logPath = join(stateDir, `refused-${problem}.log`);
      log = '';
      const p = startAs();
      expect(await p.exited).toBe(3);
      writeFileSync(logPath, log);
      expect(log).toContain(`"problem":"${problem}"`);
      expect(readFileSync(path).equals(bytes)).toBe(true);
      expect(explainStateRefusal(logPath, stateDir)).toMatch(/damaged.*rm -rf/s);
    }
    writeFileSync(path, good);
    await up();
  }, 30_000);
});
