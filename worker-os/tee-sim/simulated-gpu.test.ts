/**
 * The simulated H100: its evidence goes through the very verifier real H100 evidence goes through
 * (shared/attestation/nvidia), which accepts it only under the simulated machine's own root.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import {
  certificateFwid,
  nvidiaGpuPolicy,
  parseNvidiaSpdmEvidence,
  SPDM_GET_MEASUREMENTS_REQUEST_BYTES,
  verifyNvidiaCertificateChain,
  verifyNvidiaGpuEvidence,
} from '../../shared/attestation/nvidia/index.ts';
import {
  SIM_GPU_DRIVER_VERSION,
  SIM_GPU_ROOT_PEM_FILE,
  SIM_GPU_STATE_FILE,
  SIM_GPU_VBIOS_VERSION,
  SimulatedNvidiaGpu,
  openSimulatedNvidiaGpu,
  simulatedGpuFwid,
  simulatedGpuMeasurements,
  simulatedGpuReference,
} from './index.ts';

const NVIDIA_ROOT = readFileSync(new URL('../../test/vectors/nvidia/nvidia_device_root.pem', import.meta.url), 'utf8');

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

let dir: string;
let gpu: SimulatedNvidiaGpu;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-gpu-sim-'));
  gpu = await openSimulatedNvidiaGpu({ dir: join(dir, 'machine') });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The local manifest's reference values as a verifier policy. */
function policyFor(rootPem: string) {
  const { trustedRoots: _roots, required: _required, ...values } = simulatedGpuReference(rootPem);
  return nvidiaGpuPolicy(values);
}

const verify = (spdm: Uint8Array, options: { chainPem?: string; roots?: string[]; nonce?: Uint8Array; policy?: boolean } = {}) =>
  verifyNvidiaGpuEvidence({
    evidence: spdm,
    certChainPem: options.chainPem ?? gpu.certChainPem,
    trustedRoots: options.roots ?? [gpu.rootPem],
    at: new Date(),
    expectedNonce: options.nonce,
    policy: options.policy === false ? undefined : policyFor(gpu.rootPem),
  });

describe('the simulated GPU chain', () => {
  it('persists per machine (0600 files), keeps no CA key, and is the same on the next start', async () => {
    const machine = join(dir, 'machine');
    expect((await stat(join(machine, SIM_GPU_STATE_FILE))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(machine, SIM_GPU_ROOT_PEM_FILE), 'utf8')).toBe(gpu.rootPem);
    const again = await openSimulatedNvidiaGpu({ dir: machine });
    expect(again.certChainDer).toEqual(gpu.certChainDer);
    const stored = JSON.parse(await readFile(join(machine, SIM_GPU_STATE_FILE), 'utf8'));
    expect(Object.keys(stored).sort()).toEqual(['certs', 'format', 'fwid', 'leafPkcs8']);
  });

  it('two starts racing on a fresh machine agree on one chain', async () => {
    const machine = join(dir, 'race');
    const [a, b] = await Promise.all([openSimulatedNvidiaGpu({ dir: machine }), openSimulatedNvidiaGpu({ dir: machine })]);
    expect(a.rootPem).toBe(b.rootPem);
    expect(a.rootPem).not.toBe(gpu.rootPem);
  });

  it("is NVIDIA's shape: five certificates, P-384 leaf with the simulated firmware's FWID", async () => {
    const chain = await verifyNvidiaCertificateChain(gpu.certChainPem, [gpu.rootPem], new Date());
    expect(chain.path).toHaveLength(5);
    expect(chain.leaf.subject).toMatch(/GSP FMC LF/);
    expect(chain.path[4].subject).toMatch(/Device Identity CA/);
    expect(toHex(certificateFwid(chain.leaf)!)).toBe(toHex(simulatedGpuFwid()));
  });

  it('refuses a damaged state file rather than replacing it', async () => {
    const machine = join(dir, 'damaged');
    await openSimulatedNvidiaGpu({ dir: machine });
    await writeFile(join(machine, SIM_GPU_STATE_FILE), '{"format":"obscura-nvidia-gpu-sim/1"}');
    expect(await codeOf(openSimulatedNvidiaGpu({ dir: machine }))).toBe('ERR_MALFORMED');
  });
});

describe('simulated GPU evidence', () => {
  it('verifies under the machine root with the nonce asked for, and matches the reference values', async () => {
    const nonce = randomBytes(32);
    const { spdm } = await gpu.evidence({ nonce });
    const facts = await verify(spdm, { nonce });
    expect(facts.nonce).toBe(toHex(nonce));
    expect(facts.opaque.driverVersion).toBe(SIM_GPU_DRIVER_VERSION);
    expect(facts.opaque.vbiosVersion).toBe(SIM_GPU_VBIOS_VERSION);
    expect(facts.opaque.measurementCounts).toHaveLength(64);
    expect(facts.measurements).toEqual(simulatedGpuMeasurements());
    expect(toHex(facts.opaque.fwid!)).toBe(toHex(simulatedGpuFwid()));
    // Each answer has a fresh responder nonce.
    const second = parseNvidiaSpdmEvidence((await gpu.evidence({ nonce })).spdm);
    expect(toHex(second.response.nonce)).not.toBe(facts.responderNonce);
  });

  it("is refused under NVIDIA's root, and under another simulated machine's root", async () => {
    const nonce = randomBytes(32);
    const { spdm } = await gpu.evidence({ nonce });
    expect(await codeOf(verify(spdm, { roots: [NVIDIA_ROOT] }))).toBe('ERR_UNTRUSTED_ROOT');
    const other = await openSimulatedNvidiaGpu({ dir: join(dir, 'other-machine') });
    expect(await codeOf(verify(spdm, { roots: [other.rootPem] }))).toBe('ERR_UNTRUSTED_ROOT');
    // The other machine's own evidence under its own chain verifies; under this machine's chain it does not.
    const theirs = (await other.evidence({ nonce })).spdm;
    expect(await codeOf(verify(theirs, { chainPem: other.certChainPem, roots: [other.rootPem] }))).toBeUndefined();
    expect(await codeOf(verify(theirs))).toBe('ERR_SIGNATURE_INVALID');
  });

  it('is refused for another nonce, or with any signed byte changed', async () => {
    const nonce = randomBytes(32);
    const { spdm } = await gpu.evidence({ nonce });
    expect(await codeOf(verify(spdm, { nonce: randomBytes(32) }))).toBe('ERR_VALUE_MISMATCH');
    const firstValue = SPDM_GET_MEASUREMENTS_REQUEST_BYTES + 8 + 7; // first block's value
    for (const offset of [4, firstValue + 1 * 55 + 3, firstValue + 63 * 55, spdm.length - 96 - 120, spdm.length - 1]) {
      const tampered = spdm.slice();
      tampered[offset] ^= 0x01;
      expect(await codeOf(verify(tampered, { policy: false })), `offset ${offset}`).toBe('ERR_SIGNATURE_INVALID');
    }
  });

  it('signs what a test overrides, which the reference values then refuse', async () => {
    const nonce = randomBytes(32);
    const measured = await gpu.evidence({ nonce, overrides: { measurements: { 3: new Uint8Array(48).fill(7) } } });
    expect(await codeOf(verify(measured.spdm, { policy: false }))).toBeUndefined();
    expect(await codeOf(verify(measured.spdm))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    const oldDriver = await gpu.evidence({ nonce, overrides: { driverVersion: '535.104.05' } });
    expect(await codeOf(verify(oldDriver.spdm))).toBe('ERR_POLICY_VIOLATION');
    const otherFwid = await gpu.evidence({ nonce, overrides: { fwid: new Uint8Array(48).fill(1) } });
    expect(await codeOf(verify(otherFwid.spdm, { policy: false }))).toBe('ERR_VALUE_MISMATCH');
    const otherVbios = await openSimulatedNvidiaGpu({ dir: join(dir, 'machine'), vbiosVersion: '96.00.74.00.01' });
    expect(await codeOf(verify((await otherVbios.evidence({ nonce })).spdm))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
  });

  it('refuses a nonce of the wrong size and a malformed VBIOS version', async () => {
    expect(await codeOf(gpu.evidence({ nonce: randomBytes(16) }))).toBe('ERR_USAGE');
    expect(await codeOf(openSimulatedNvidiaGpu({ dir: join(dir, 'machine'), vbiosVersion: '96.0' }))).toBe('ERR_USAGE');
  });
});
