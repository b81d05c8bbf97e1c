/**
 * The state handoff between two real service processes (`attestation-service/main.ts`), each on its
 * own simulated machine: B, started fresh with `--handoff-from`, takes A's state and serves it (a
 * secret exchanged at A is released by B), A refuses changes naming B; a B that cannot verify A, or
 * that holds a state already, stops with exit status 4 and asks nothing; neither log carries a secret.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, toHex } from '../../shared/bytes.ts';
import { parseManifest } from '../../shared/manifest/validate-manifest.ts';
import { LABEL_SECRET_TO_WORKER } from '../../shared/protocol/constants.ts';
import { openSecret } from '../../shared/protocol/inference-secret.ts';
import { AttestationServiceClient } from '../../backend/as-client.ts';
import { ensureLocalPki } from '../../client/cli/local-deployment/local-pki.ts';
import { referenceServiceMeasurement } from '../../client/cli/local-deployment/local-manifest.ts';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { ensureSimulatedHardware, simulatedSnpProvider } from '../../worker-os/tee/simulated-snp.ts';
import { freePort } from '../e2e/harness.ts';
import { caAgent, encodingsOf, httpJson, makeOwner, putManifest, submitSecret, testManifest } from './fixtures.ts';

interface Proc {
  child: ChildProcess;
  exited: Promise<number | null>;
  log: () => string;
}

let dir: string;
const pki: Record<'a' | 'b', { caPem: string; caPath: string; cert: string; key: string }> = {} as never;
const roots: Record<'m1' | 'm2', string> = { m1: '', m2: '' };
const ports = { a: 0, b: 0 };
const url = (p: number) => `https://127.0.0.1:${p}`;
const procs: Proc[] = [];
const workerMeasurement = new Uint8Array(48).fill(7);

function startAs(name: 'a' | 'b', machine: 'm1' | 'm2', stateDir: string, port: number, extra: string[] = []): Proc {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'attestation-service/main.ts', '--port', String(port), '--tls-cert', pki[name].cert, '--tls-key', pki[name].key, '--tee-dir', join(dir, machine), '--state-dir', join(dir, stateDir), ...extra],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const p = { child, exited: new Promise<number | null>((r) => child.on('exit', (code) => r(code))), log: () => log };
  procs.push(p);
  return p;
}

async function ready(p: Proc, port: number, caPem: string): Promise<void> {
  const agent = caAgent(caPem);
  try {
    for (let i = 0; i < 300; i++) {
      if (p.child.exitCode !== null) throw new Error(`the service exited (${p.child.exitCode}):\n${p.log()}`);
      if (await httpJson(agent, 'GET', `${url(port)}/healthz`).then((r) => r.status === 200, () => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the service did not come up:\n${p.log()}`);
  } finally {
    await agent.close();
  }
}

const handoffFlags = (rootsFile: string) => ['--handoff-from', url(ports.a), '--handoff-roots', rootsFile, '--handoff-ca', pki.a.caPath];

let a: Proc;
let b: Proc;
let secret: { sid: Uint8Array; secret: Uint8Array };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-as-handoff-'));
  for (const name of ['a', 'b'] as const) {
    const p = await ensureLocalPki(join(dir, `pki-${name}`));
    pki[name] = { caPem: p.caPem, caPath: p.caPath, cert: p.servers['attestation-service'].certPath, key: p.servers['attestation-service'].keyPath };
  }
  [roots.m1, roots.m2] = (await Promise.all([ensureSimulatedHardware(join(dir, 'm1')), ensureSimulatedHardware(join(dir, 'm2'))])).map((h) => h.localRootPem);
  writeFileSync(join(dir, 'root-m1.pem'), roots.m1);
  writeFileSync(join(dir, 'root-m2.pem'), roots.m2);
  ports.a = await freePort();
  ports.b = await freePort();
  a = startAs('a', 'm1', 'state-a', ports.a);
  await ready(a, ports.a, pki.a.caPem);
  const owner = await makeOwner('alice');
  const manifest = parseManifest({
    ...testManifest({ rootPems: [roots.m1, roots.m2], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] }),
    attestationService: { measurements: [referenceServiceMeasurement()] },
  });
  const agent = caAgent(pki.a.caPem);
  expect((await putManifest(agent, url(ports.a), manifest, owner)).status).toBe(200);
  const s = await submitSecret(agent, url(ports.a), { rootPem: roots.m1, measurementHex: referenceServiceMeasurement() });
  expect(s.status).toBe(201);
  secret = s;
  await agent.close();
}, 120_000);

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('the state handoff between two service processes', () => {
  it('a new service that cannot verify the old one (its evidence under another root) stops with status 4; A is not touched', async () => {
    const refused = startAs('b', 'm2', 'state-refused', ports.b, handoffFlags(join(dir, 'root-m2.pem')));
    expect(await refused.exited).toBe(4);
    expect(refused.log()).toMatch(/"event":"handoff-failed".*"code":"ERR_UNTRUSTED_ROOT"/);
    expect(a.log()).not.toMatch(/handoff-/);
  }, 30_000);

  it('B on machine 2 takes the state and releases the secret exchanged at A to a worker it certified; A refuses changes naming B', async () => {
    b = startAs('b', 'm2', 'state-b', ports.b, handoffFlags(join(dir, 'root-m1.pem')));
    await ready(b, ports.b, pki.b.caPem);
    expect(a.log()).toMatch(/"event":"handoff-sent","to":"https:\/\/127\.0\.0\.1:\d+"/);
    expect(b.log()).toMatch(/"event":"handoff-received"/);
    expect(b.log()).toMatch(/"event":"state-opened","origin":"handed-over","manifestEntries":1/);

    const worker = new AttestationServiceClient(url(ports.b), { ca: pki.b.caPem });
    const identity = await worker.register(await simulatedSnpProvider({ hardwareDir: join(dir, 'm2'), measurement: workerMeasurement }), 'https://127.0.0.1:1');
    const sealed = await worker.fetchSecret(secret.sid);
    const opened = await openSecret({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(identity.hpke.publicKey) });
    expect(toHex(opened)).toBe(toHex(secret.secret));
    await worker.close();

    const agent = caAgent(pki.a.caPem);
    const refused = await submitSecret(agent, url(ports.a), { rootPem: roots.m1, measurementHex: referenceServiceMeasurement() });
    expect(refused.status).toBe(410);
    expect(refused.json.error).toMatchObject({ code: 'ERR_SERVICE_MOVED' });
    expect(refused.json.error.message).toContain(url(ports.b));
    expect((await httpJson(agent, 'GET', `${url(ports.a)}/v1/handoff`)).json).toMatchObject({ handedOff: true, to: url(ports.b) });
    await agent.close();
  }, 60_000);

  it('a service that holds a state refuses to take another (status 4) and keeps its own', async () => {
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    const stateFile = join(dir, 'state-b', 'state.sealed');
    const kept = readFileSync(stateFile);
    const again = startAs('b', 'm2', 'state-b', ports.b, handoffFlags(join(dir, 'root-m1.pem')));
    expect(await again.exited).toBe(4);
    expect(again.log()).toMatch(/"event":"handoff-failed".*holds a state already/);
    expect(readFileSync(stateFile).equals(kept)).toBe(true);
  }, 30_000);

  it('neither log carries the secret', () => {
    const logs = procs.map((p) => p.log()).join('\n');
    for (const enc of encodingsOf(secret.secret)) expect(logs.includes(enc)).toBe(false);
  });
});
