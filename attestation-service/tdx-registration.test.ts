/**
 * TDX workers, in-process over real HTTPS and mutual TLS: a simulated TDX machine's quote and the
 * collateral it ships, checked against the manifest's `platforms.tdx` by the real TDX verifier.
 * Admitted: a certificate, then a secret released sealed to its attested key; the worker listed with
 * its MRTD; an OutOfDate platform once the manifest accepts that status. Refused, with no certificate
 * and a typed error: an MRTD the manifest does not allow, a quote under a root it does not trust, a
 * TCB status it does not accept, a debug TD, a tampered quote or collateral, a replayed challenge,
 * report data binding another key, and TDX evidence when the manifest names no TDX reference.
 * Revocation bans the machine (its PCK certificate's PPID), not every TDX machine.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, randomBytes, sha256, toBase64Url, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import type { TdxEvidence } from '../shared/attestation/evidence.ts';
import { verifyEvidenceAgainstReference } from '../shared/attestation/verify-evidence.ts';
import { PURPOSE_WORKER_REVOKE, signOwnerRequest } from '../shared/manifest/owner-request.ts';
import type { Manifest, ManifestInput } from '../shared/manifest/schema.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';
import { LABEL_SECRET_TO_WORKER } from '../shared/protocol/constants.ts';
import { openSecret } from '../shared/protocol/inference-secret.ts';
import { AttestationServiceClient } from '../backend/as-client.ts';
import { ensureLocalPki } from '../client/cli/local-deployment/local-pki.ts';
import { localManifest, referenceWorkerMeasurement } from '../client/cli/local-deployment/local-manifest.ts';
import { openSimulatedTdxTee, type SimulatedTdQuoteRequest } from '../worker-os/tee-sim/index.ts';
import { ensureSimulatedHardware, simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { simulatedTdxProvider, simulatedTdxRootOf } from '../worker-os/tee/simulated-tdx.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import { InProcessService, caAgent, httpJson, makeOwner, postRegistration, putManifest, registrationBody, submitSecret, testManifest, type ServicePolicy, type TestOwner } from '../test/as/fixtures.ts';
import { openAttestationService } from './service.ts';

let dir: string;
let machine: string;
let otherMachine: string;
let tls: { certPem: string; keyPem: string };
let caPem: string;
let agent: Agent;
let snpRootPem: string;
let tdxRootPem: string;
let otherTdxRootPem: string;
let tdxWorker: TeeProvider;
let owner: TestOwner;
let policy: ServicePolicy;
const serviceMeasurement = randomBytes(48);
const workerMeasurement = randomBytes(48);
const logged: Record<string, unknown>[] = [];
const as = new InProcessService(async () => {
  const serviceTee = await simulatedSnpProvider({ hardwareDir: machine, measurement: serviceMeasurement });
  return openAttestationService({ tee: serviceTee, measurement: serviceMeasurement, stateDir: join(dir, 'as'), tlsCertPem: tls.certPem, log: (e) => logged.push(e) });
}, () => tls);
const start = () => as.start();
const url = () => as.url;
const codeOf = async (p: Promise<unknown>) => p.then(() => 'admitted', (e) => (e instanceof ObscuraError ? e.code : String(e)));

/** The test manifest (SEV-SNP workers as usual) with a TDX reference for the simulated machine. */
function manifestWith(tdx: NonNullable<ManifestInput['platforms']['tdx']> | undefined): Manifest {
  const base = testManifest({ rootPems: [snpRootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] });
  return parseManifest({ ...base, platforms: { ...base.platforms, ...(tdx ? { tdx } : {}) } });
}
const tdxReference = (patch: Partial<NonNullable<ManifestInput['platforms']['tdx']>> = {}) => ({ trustedRoots: [tdxRootPem], mrTd: [toHex(workerMeasurement)], ...patch });

async function setManifest(manifest: Manifest): Promise<void> {
  const current = await httpJson(agent, 'GET', `${url()}/v1/manifest`);
  const res = current.json.head ? await putManifest(agent, url(), manifest, owner, fromHex(current.json.head)) : await putManifest(agent, url(), manifest, owner);
  expect(res.status).toBe(200);
}

async function register(tee: TeeProvider): Promise<string> {
  const client = new AttestationServiceClient(url(), { ca: caPem });
  try {
    return await codeOf(client.register(tee, 'https://127.0.0.1:1'));
  } finally {
    await client.close();
  }
}

const workerCount = async () => (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.length as number;

/** A TDX provider over the simulated machine in `dir` whose evidence `change` may alter. */
async function tdxProvider(opts: {
  dir?: string;
  request?: Partial<SimulatedTdQuoteRequest>;
  platformStatus?: 'OutOfDate';
  change?: (e: TdxEvidence, reportData: Uint8Array) => TdxEvidence | Promise<TdxEvidence>;
}): Promise<TeeProvider> {
  const tee = await openSimulatedTdxTee({ dir: opts.dir ?? machine, platformStatus: opts.platformStatus });
  return {
    platform: 'tdx',
    async attest(reportData) {
      const e = await tee.evidence({ reportData, mrTd: workerMeasurement, ...opts.request });
      return opts.change ? opts.change(e, reportData) : e;
    },
    sealingKey: () => Promise.reject(new Error('not used')),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-tdx-registration-'));
  machine = join(dir, 'machine');
  otherMachine = join(dir, 'other-machine');
  const pki = await ensureLocalPki(dir);
  caPem = pki.caPem;
  tls = { certPem: readFileSync(pki.servers['attestation-service'].certPath, 'utf8'), keyPem: readFileSync(pki.servers['attestation-service'].keyPath, 'utf8') };
  agent = caAgent(caPem);
  ({ localRootPem: snpRootPem, tdxRootPem } = await ensureSimulatedHardware(machine));
  otherTdxRootPem = (await openSimulatedTdxTee({ dir: otherMachine })).rootPem;
  tdxWorker = await simulatedTdxProvider({ hardwareDir: machine, measurement: workerMeasurement });
  owner = await makeOwner('alice');
  policy = { rootPem: snpRootPem, measurementHex: toHex(serviceMeasurement) };
  await start();
  await setManifest(manifestWith(tdxReference()));
}, 60_000);

afterAll(async () => {
  await as.stop();
  await agent?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a TDX worker', () => {
  it('registers, gets a certificate, then a secret sealed to its attested key; listed with its MRTD', async () => {
    const client = new AttestationServiceClient(url(), { ca: caPem });
    const identity = await client.register(tdxWorker, 'https://127.0.0.1:1');
    expect(identity.certPem).toMatch(/BEGIN CERTIFICATE/);
    const { sid, secret } = await submitSecret(agent, url(), policy);
    const sealed = await client.fetchSecret(sid);
    const opened = await openSecret({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: await sha256(identity.hpke.publicKey) });
    expect(toHex(opened)).toBe(toHex(secret));
    await client.close();
    const row = (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.find((w: { workerId: string }) => w.workerId === identity.workerId);
    expect(row).toMatchObject({ measurement: toHex(workerMeasurement), current: true, revoked: false });
    const admitted = as.service.ctx.workers.list().find((w) => w.workerId === identity.workerId)!;
    expect(admitted.platform).toBe('tdx');
    expect(admitted.chipId).toBe(toHex((await openSimulatedTdxTee({ dir: machine })).ppid));
    expect(logged.some((e) => e.event === 'worker-admitted' && e.workerId === identity.workerId)).toBe(true);
  }, 30_000);

  const tamperQuote = (at: number) => (e: TdxEvidence) => {
    const quote = e.quote.slice();
    quote[at] ^= 0x01;
    return { ...e, quote };
  };
  const refusals: [string, () => Promise<TeeProvider>, string][] = [
    ['an MRTD the manifest does not allow', () => tdxProvider({ request: { mrTd: randomBytes(48) } }), 'ERR_MEASUREMENT_NOT_ALLOWED'],
    ['a quote under a root the manifest does not trust (another simulated machine)', () => tdxProvider({ dir: otherMachine }), 'ERR_UNTRUSTED_ROOT'],
    ['collateral saying the platform\'s TCB is OutOfDate (only UpToDate accepted)', () => tdxProvider({ platformStatus: 'OutOfDate' }), 'ERR_POLICY_VIOLATION'],
    ['a debug TD', () => tdxProvider({ request: { debug: true } }), 'ERR_POLICY_VIOLATION'],
    ['a tampered quote (MRTD changed after signing)', () => tdxProvider({ change: tamperQuote(48 + 136) }), 'ERR_SIGNATURE_INVALID'],
    ['a tampered quote (QE report MRENCLAVE changed after the PCK signed it)', () => tdxProvider({ change: tamperQuote(636 + 128 + 6 + 64) }), 'ERR_SIGNATURE_INVALID'],
    [
      'tampered collateral (a TCB level in the signed TCB info changed)',
      () =>
        tdxProvider({
          change: (e) => {
            const text = new TextDecoder().decode(e.collateral.tcbInfoJson).replace('"tcbStatus":"OutOfDate"', '"tcbStatus":"UpToDate"');
            return { ...e, collateral: { ...e.collateral, tcbInfoJson: new TextEncoder().encode(text) } };
          },
        }),
      'ERR_SIGNATURE_INVALID',
    ],
    [
      'tampered collateral (the QE identity\'s signature)',
      () =>
        tdxProvider({
          change: (e) => {
            const text = new TextDecoder().decode(e.collateral.qeIdentityJson);
            const at = text.indexOf('"signature":"') + 13;
            const flipped = text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1);
            return { ...e, collateral: { ...e.collateral, qeIdentityJson: new TextEncoder().encode(flipped) } };
          },
        }),
      'ERR_SIGNATURE_INVALID',
    ],
    ['report data binding another key', () => tdxProvider({ change: async (e) => (await openSimulatedTdxTee({ dir: machine })).evidence({ reportData: randomBytes(64), mrTd: workerMeasurement }) }), 'ERR_VALUE_MISMATCH'],
  ];

  it.each(refusals)('refuses %s: no certificate, a typed error', async (_, make, code) => {
    const provider = await make();
    const before = await workerCount();
    expect(await register(provider)).toBe(code);
    expect(await workerCount()).toBe(before);
    expect(logged.at(-1)).toMatchObject({ event: 'worker-refused', code });
  });

  it('refuses a replayed registration: the challenge is consumed', async () => {
    const body = await registrationBody(agent, url(), tdxWorker);
    expect((await postRegistration(agent, url(), body)).status).toBe(200);
    const again = await postRegistration(agent, url(), body);
    expect(again.json.error.code).toBe('ERR_VALUE_MISMATCH');
    expect(again.status).toBeGreaterThanOrEqual(400);
  });

  it('admits an OutOfDate platform once the manifest accepts that status; a listed RTMR must match', async () => {
    const stale = await tdxProvider({ platformStatus: 'OutOfDate' });
    await setManifest(manifestWith(tdxReference({ acceptedTcbStatuses: ['UpToDate', 'OutOfDate'] })));
    expect(await register(stale)).toBe('admitted');
    await setManifest(manifestWith(tdxReference({ rtmr3: ['ab'.repeat(48)] })));
    expect(await register(tdxWorker)).toBe('ERR_VALUE_MISMATCH');
    expect(await register(await tdxProvider({ request: { rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48).fill(0xab)] } }))).toBe('admitted');
  });

  it('is refused when the manifest names no TDX reference; SEV-SNP workers are not affected', async () => {
    await setManifest(manifestWith(undefined));
    expect(await register(tdxWorker)).toBe('ERR_POLICY_VIOLATION');
    expect(await register(await simulatedSnpProvider({ hardwareDir: machine, measurement: workerMeasurement }))).toBe('admitted');
  });

  it('an owner\'s revocation bans the worker\'s machine (its PPID), and not another TDX machine', async () => {
    await setManifest(manifestWith(tdxReference({ trustedRoots: [tdxRootPem, otherTdxRootPem] })));
    const client = new AttestationServiceClient(url(), { ca: caPem });
    const identity = await client.register(tdxWorker, 'https://127.0.0.1:1');
    await client.close();
    const head = fromHex((await httpJson(agent, 'GET', `${url()}/v1/manifest`)).json.head);
    const fields = { workerId: identity.workerId, identityOnly: false, timestamp: Date.now(), manifestHead: head };
    const signature = await signOwnerRequest(owner.privateKey, PURPOSE_WORKER_REVOKE, fields);
    const res = await httpJson(agent, 'POST', `${url()}/v1/workers/revoke`, { ...fields, manifestHead: toHex(head), ownerId: owner.id, signature: toBase64Url(signature) });
    expect(res.json.machineRevoked).toBe(true);
    // A fresh identity on the same machine is refused; the other machine is admitted.
    expect(await register(await simulatedTdxProvider({ hardwareDir: machine, measurement: workerMeasurement }))).toBe('ERR_REVOKED');
    expect(await register(await simulatedTdxProvider({ hardwareDir: otherMachine, measurement: workerMeasurement }))).toBe('admitted');
  });
});

describe('the local deployment\'s manifest', () => {
  it('lists the simulated machine\'s TDX root and the reference measurement as MRTD: a TDX worker of this checkout passes', async () => {
    const modelPath = join(dir, 'model.json');
    await writeFile(modelPath, '{}');
    const local = parseManifest(localManifest({ localRootPem: snpRootPem, owner: { ...owner, id: 'local-owner' }, modelPath }));
    expect(simulatedTdxRootOf(snpRootPem)).toBe(tdxRootPem);
    expect(local.platforms.tdx).toEqual({ trustedRoots: [tdxRootPem], mrTd: [referenceWorkerMeasurement()], acceptedTcbStatuses: ['UpToDate'], allowDebug: false });
    expect(local.platforms['sev-snp']!.measurements).toEqual([referenceWorkerMeasurement()]);
    const reportData = randomBytes(64);
    const worker = await simulatedTdxProvider({ hardwareDir: machine, measurement: fromHex(referenceWorkerMeasurement()) });
    const facts = await verifyEvidenceAgainstReference(await worker.attest(reportData), local.platforms, new Date());
    expect(facts).toMatchObject({ platform: 'tdx', measurement: fromHex(referenceWorkerMeasurement()), reportData, debug: false, version: 4 });
    expect(facts.tdx?.tcbStatus).toBe('UpToDate');
  });
});
