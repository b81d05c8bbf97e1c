/**
 * Worker registration with GPU evidence, in-process over real HTTPS: the simulated machine's SEV-SNP
 * report and its simulated H100's SPDM evidence, checked against a manifest's GPU reference values.
 * Refused (no certificate, a typed error): GPU evidence made for another registration, a chain under a
 * root the manifest does not trust, a driver below the minimum, a tampered or disallowed measurement,
 * none when the manifest requires a GPU, and malformed evidence. Admitted: the GPU's facts recorded,
 * listed, and kept across a restart.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, fromHex, randomBytes, sha256, toHex } from '../shared/bytes.ts';
import { encodeDeterministic } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { encodeEvidence } from '../shared/attestation/evidence.ts';
import { encodeGpuEvidence, type GpuEvidence } from '../shared/attestation/gpu-evidence.ts';
import { SPDM_GET_MEASUREMENTS_REQUEST_BYTES } from '../shared/attestation/nvidia/index.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';
import type { Manifest, ManifestInput } from '../shared/manifest/schema.ts';
import { generateHpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import { workerRegistrationGpuNonce, workerRegistrationReportData } from '../shared/protocol/worker-registration.ts';
import { AttestationServiceClient } from '../backend/as-client.ts';
import { ensureLocalPki } from '../client/cli/local-deployment/local-pki.ts';
import { SIM_GPU_DRIVER_VERSION, SIM_GPU_VBIOS_VERSION, openSimulatedNvidiaGpu, simulatedGpuReference, type SimulatedNvidiaGpu } from '../worker-os/tee-sim/index.ts';
import { ensureSimulatedHardware, simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { simulatedGpuProvider } from '../worker-os/tee/simulated-gpu.ts';
import type { GpuEvidenceProvider, TeeProvider } from '../worker-os/tee/provider.ts';
import { InProcessService, caAgent, httpJson, makeOwner, postRegistration, putManifest, testManifest, type TestOwner } from '../test/as/fixtures.ts';
import { openAttestationService } from './service.ts';

let dir: string;
let machine: string;
let tls: { certPem: string; keyPem: string };
let caPem: string;
let agent: Agent;
let snpRootPem: string;
let gpuRootPem: string;
let workerTee: TeeProvider;
let gpu: SimulatedNvidiaGpu;
let goodGpu: GpuEvidenceProvider;
let owner: TestOwner;
const serviceMeasurement = randomBytes(48);
const workerMeasurement = randomBytes(48);
const logged: Record<string, unknown>[] = [];
const as = new InProcessService(async () => {
  const serviceTee = await simulatedSnpProvider({ hardwareDir: machine, measurement: serviceMeasurement });
  return openAttestationService({ tee: serviceTee, measurement: serviceMeasurement, stateDir: join(dir, 'as'), tlsCertPem: tls.certPem, log: (e) => logged.push(e) });
}, () => tls);
const start = () => as.start();
const stop = () => as.stop();
const url = () => as.url;
const codeOf = async (p: Promise<unknown>) => p.then(() => 'admitted', (e) => (e instanceof ObscuraError ? e.code : String(e)));

/** The test manifest with `gpus` as given (undefined: no GPU reference values at all). */
function manifestWith(gpus: ManifestInput['gpus'] | undefined): Manifest {
  const base = testManifest({ rootPems: [snpRootPem], workerMeasurements: [toHex(workerMeasurement)], owners: [owner] });
  const { gpus: _none, ...rest } = base;
  return parseManifest(gpus === undefined ? rest : { ...rest, gpus });
}

async function setManifest(manifest: Manifest): Promise<void> {
  const current = await httpJson(agent, 'GET', `${url()}/v1/manifest`);
  const prev = current.json.head ? fromHex(current.json.head) : undefined;
  const res = prev ? await putManifest(agent, url(), manifest, owner, prev) : await putManifest(agent, url(), manifest, owner);
  expect(res.status).toBe(200);
}

const provider = (attest: (nonce: Uint8Array) => Promise<GpuEvidence>): GpuEvidenceProvider => ({ kind: 'nvidia-h100', attest });
const fromSim = async (g: SimulatedNvidiaGpu, nonce: Uint8Array, overrides?: Parameters<SimulatedNvidiaGpu['evidence']>[0]['overrides']): Promise<GpuEvidence> => {
  const e = await g.evidence({ nonce, overrides });
  return { kind: 'nvidia-h100', spdm: e.spdm, certChain: [...e.certChainDer] };
};

async function register(gpus: GpuEvidenceProvider[]): Promise<string> {
  const client = new AttestationServiceClient(url(), { ca: caPem });
  try {
    return await codeOf(client.register(workerTee, 'https://127.0.0.1:1', gpus));
  } finally {
    await client.close();
  }
}

async function workerCount(): Promise<number> {
  return (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.length;
}

/** A registration built by hand, with `gpuEvidence` as given (any value), unsent. */
async function handmadeRegistration(gpuEvidence: (gpuNonce: Uint8Array) => Promise<unknown>): Promise<Uint8Array> {
  const ch = await httpJson(agent, 'POST', `${url()}/v1/workers/challenge`);
  const nonce = fromBase64Url(ch.json.nonce);
  const hpke = await generateHpkeKeyPair();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const certSpki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const binding = { nonce, hpkePublicKey: hpke.publicKey, hpkeSuite: hpke.suite, certKeySha256: await sha256(certSpki) };
  const evidence = await workerTee.attest(await workerRegistrationReportData(binding));
  return encodeDeterministic({
    nonce,
    evidence: encodeEvidence(evidence),
    hpkePublicKey: hpke.publicKey,
    hpkeSuite: hpke.suite,
    certSpki,
    endpoint: 'https://127.0.0.1:1',
    gpuEvidence: await gpuEvidence(await workerRegistrationGpuNonce(binding)),
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-gpu-registration-'));
  machine = join(dir, 'tee');
  const pki = await ensureLocalPki(dir);
  caPem = pki.caPem;
  tls = { certPem: readFileSync(pki.servers['attestation-service'].certPath, 'utf8'), keyPem: readFileSync(pki.servers['attestation-service'].keyPath, 'utf8') };
  agent = caAgent(caPem);
  ({ localRootPem: snpRootPem, gpuRootPem } = await ensureSimulatedHardware(machine));
  workerTee = await simulatedSnpProvider({ hardwareDir: machine, measurement: workerMeasurement });
  gpu = await openSimulatedNvidiaGpu({ dir: machine });
  goodGpu = await simulatedGpuProvider({ hardwareDir: machine });
  owner = await makeOwner('alice');
  await start();
  await setManifest(manifestWith({ 'nvidia-h100': simulatedGpuReference(gpuRootPem) }));
}, 60_000);

afterAll(async () => {
  await stop();
  await agent?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a manifest that requires the simulated H100', () => {
  it('admits a worker with valid GPU evidence, records its GPU facts, lists them and keeps them across a restart', async () => {
    const client = new AttestationServiceClient(url(), { ca: caPem });
    const identity = await client.register(workerTee, 'https://127.0.0.1:1', [goodGpu]);
    await client.close();
    expect(identity.certPem).toMatch(/BEGIN CERTIFICATE/);
    const listed = async () => (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.find((w: { workerId: string }) => w.workerId === identity.workerId);
    const row = await listed();
    expect(row.gpus).toHaveLength(1);
    expect(row.gpus[0]).toMatchObject({ kind: 'nvidia-h100', driverVersion: SIM_GPU_DRIVER_VERSION, vbiosVersion: SIM_GPU_VBIOS_VERSION, measurementCount: 64 });
    expect(row.gpus[0].measurementsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(row.gpus[0].rootFingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(logged.some((e) => e.event === 'worker-admitted' && e.workerId === identity.workerId && JSON.stringify(e.gpus).includes(SIM_GPU_DRIVER_VERSION))).toBe(true);
    await stop();
    await start();
    expect((await listed()).gpus).toEqual(row.gpus);
  }, 30_000);

  const refusals: [string, () => Promise<GpuEvidenceProvider[]>, string][] = [
    ['no GPU evidence', async () => [], 'ERR_POLICY_VIOLATION'],
    [
      'GPU evidence made for another registration (its nonce)',
      async () => {
        // Capture the evidence the GPU made for one registration, then offer it in the next.
        let captured: GpuEvidence | undefined;
        await register([provider(async (nonce) => (captured = await fromSim(gpu, nonce)))]);
        return [provider(async () => captured!)];
      },
      'ERR_VALUE_MISMATCH',
    ],
    ['GPU evidence with a random nonce', async () => [provider(async () => fromSim(gpu, randomBytes(32)))], 'ERR_VALUE_MISMATCH'],
    [
      'a GPU chain under a root the manifest does not trust (another simulated machine)',
      async () => [await simulatedGpuProvider({ hardwareDir: join(dir, 'other-machine') })],
      'ERR_UNTRUSTED_ROOT',
    ],
    ['a driver below the minimum', async () => [await simulatedGpuProvider({ hardwareDir: machine, driverVersion: '535.104.05' })], 'ERR_POLICY_VIOLATION'],
    ['a VBIOS the manifest does not list', async () => [await simulatedGpuProvider({ hardwareDir: machine, vbiosVersion: '96.00.74.00.01' })], 'ERR_MEASUREMENT_NOT_ALLOWED'],
    [
      'a tampered measurement block',
      async () => [
        provider(async (nonce) => {
          const e = await fromSim(gpu, nonce);
          e.spdm[SPDM_GET_MEASUREMENTS_REQUEST_BYTES + 8 + 2 * 55 + 7 + 10] ^= 0x01; // block 3's value
          return e;
        }),
      ],
      'ERR_SIGNATURE_INVALID',
    ],
    ['a validly signed measurement that is not a reference value', async () => [provider((nonce) => fromSim(gpu, nonce, { measurements: { 5: new Uint8Array(48).fill(9) } }))], 'ERR_MEASUREMENT_NOT_ALLOWED'],
    ['the same GPU twice', async () => [goodGpu, goodGpu], 'ERR_VALUE_MISMATCH'],
  ];

  it.each(refusals)('refuses %s: no certificate, a typed error', async (_, gpus, code) => {
    const providers = await gpus();
    const before = await workerCount();
    expect(await register(providers)).toBe(code);
    expect(await workerCount()).toBe(before);
    expect(logged.at(-1)).toMatchObject({ event: 'worker-refused', code });
  });

  it('refuses malformed GPU evidence with a typed error', async () => {
    const cases: [(gpuNonce: Uint8Array) => Promise<unknown>, string][] = [
      [async () => 'not a list', 'ERR_MALFORMED'],
      [async (n) => [{ kind: 'nvidia-h100', spdm: (await fromSim(gpu, n)).spdm.slice(0, 200), certChain: [...gpu.certChainDer] }], 'ERR_MALFORMED'],
      [async () => [{ kind: 'nvidia-h100', spdm: new Uint8Array(0), certChain: [...gpu.certChainDer] }], 'ERR_MALFORMED'],
      [async (n) => [{ ...encodeGpuEvidence(await fromSim(gpu, n)), certChain: 'pem' }], 'ERR_MALFORMED'],
      [async (n) => [{ ...encodeGpuEvidence(await fromSim(gpu, n)), certChain: [gpu.certChainDer[0]] }], 'ERR_CHAIN_INVALID'],
      [async (n) => [{ ...encodeGpuEvidence(await fromSim(gpu, n)), certChain: [new Uint8Array([0x30, 0x03, 1, 2, 3])] }], 'ERR_MALFORMED'],
      [async (n) => [{ ...encodeGpuEvidence(await fromSim(gpu, n)), kind: 'amd-mi300x' }], 'ERR_UNSUPPORTED_VERSION'],
      [async (n) => Array.from({ length: 9 }, () => 0).map(() => n), 'ERR_MALFORMED'],
    ];
    for (const [gpuEvidence, code] of cases) {
      const res = await postRegistration(agent, url(), await handmadeRegistration(gpuEvidence));
      expect(res.json.error?.code, JSON.stringify(res.json)).toBe(code);
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    // The same hand-made path with good evidence is admitted (the harness itself is sound).
    const ok = await postRegistration(agent, url(), await handmadeRegistration(async (n) => [encodeGpuEvidence(await fromSim(gpu, n))]));
    expect(ok.status).toBe(200);
  });
});

describe('a manifest whose GPU is optional, or that names none', () => {
  it('optional: a CPU-only worker is admitted without GPU facts; GPU evidence, when sent, must still be valid', async () => {
    await setManifest(manifestWith({ 'nvidia-h100': simulatedGpuReference(gpuRootPem, { required: false }) }));
    expect(await register([])).toBe('admitted');
    expect(await register([goodGpu])).toBe('admitted');
    expect(await register([await simulatedGpuProvider({ hardwareDir: machine, driverVersion: '470.1' })])).toBe('ERR_POLICY_VIOLATION');
    const rows = (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.filter((w: { current: boolean }) => w.current);
    expect(rows.map((w: { gpus: unknown[] }) => w.gpus.length).sort()).toEqual([0, 1]);
  });

  it('none: GPU evidence is not part of admission, so it is neither checked nor recorded (but must parse)', async () => {
    await setManifest(manifestWith(undefined));
    expect(await register([])).toBe('admitted');
    expect(await register([await simulatedGpuProvider({ hardwareDir: join(dir, 'other-machine') })])).toBe('admitted');
    const rows = (await httpJson(agent, 'GET', `${url()}/v1/workers`)).json.workers.filter((w: { current: boolean }) => w.current);
    expect(rows.every((w: { gpus: unknown[] }) => w.gpus.length === 0)).toBe(true);
    const malformed = await postRegistration(agent, url(), await handmadeRegistration(async () => [{ kind: 'nvidia-h100', spdm: randomBytes(10) }]));
    expect(malformed.json.error.code).toBe('ERR_MALFORMED');
  });
});

describe('the manifest schema', () => {
  it('reports a bad GPU reference with its JSON path', async () => {
    const { manifestProblems } = await import('../shared/manifest/validate-manifest.ts');
    const ref = simulatedGpuReference(gpuRootPem);
    const doc = (gpus: unknown) => ({ ...manifestWith(undefined), gpus });
    expect(manifestProblems(doc({ 'nvidia-h100': ref }))).toEqual([]);
    expect(manifestProblems(doc({ 'nvidia-h100': { ...ref, minDriverVersion: 'r550' } })).map((p) => p.path)).toEqual(['$.gpus["nvidia-h100"].minDriverVersion']);
    expect(manifestProblems(doc({ 'nvidia-h100': { ...ref, trustedRoots: [] } })).map((p) => p.path)).toEqual(['$.gpus["nvidia-h100"].trustedRoots']);
    expect(manifestProblems(doc({ 'nvidia-h100': { ...ref, measurements: { 255: ['00'] } } }))[0].path).toMatch(/^\$\.gpus\["nvidia-h100"\]\.measurements/);
    expect(manifestProblems(doc({ 'nvidia-h100': { ...ref, measurements: { 3: ['XYZ'] } } })).map((p) => p.path)).toEqual(['$.gpus["nvidia-h100"].measurements["3"][0]']);
    expect(manifestProblems(doc({ 'amd-mi300x': ref })).map((p) => p.path)).toEqual(['$.gpus']);
    expect(manifestProblems(doc({ 'nvidia-h100': { ...ref, vbiosVersions: ['96.00'] } })).map((p) => p.path)).toEqual(['$.gpus["nvidia-h100"].vbiosVersions[0]']);
  });
});
