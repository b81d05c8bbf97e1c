import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { parseNvidiaSpdmEvidence } from './spdm.ts';
import { nvidiaGpuFacts, type NvidiaGpuFacts } from './facts.ts';
import { compareDriverVersions, nvidiaGpuPolicy } from './policy.ts';
import { validateNvidiaGpuFacts } from './validate.ts';
import { verifyNvidiaGpuEvidence } from './index.ts';

const read = (path: string) => readFileSync(new URL(`../../../test/vectors/nvidia/${path}`, import.meta.url), 'utf8');
const FACTS_A = nvidiaGpuFacts(parseNvidiaSpdmEvidence(read('h100-a/report.hex')));
const FACTS_B = nvidiaGpuFacts(parseNvidiaSpdmEvidence(read('h100-b/report.hex')));

/** A policy that lists exactly what h100-a measured. */
function policyOf(facts: NvidiaGpuFacts, extra: Record<string, unknown> = {}) {
  const measurements = Object.fromEntries(Object.entries(facts.measurements).map(([k, v]) => [k, [v.toUpperCase()]]));
  return nvidiaGpuPolicy({ measurements, ...extra });
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
}

describe('validateNvidiaGpuFacts', () => {
  it('accepts the values it was made from, refuses another GPU firmware', () => {
    const policy = policyOf(FACTS_A, { driverVersions: ['550.90.07'], vbiosVersions: ['96.00.9f.00.01'], minDriverVersion: '550' });
    expect(code(() => validateNvidiaGpuFacts(FACTS_A, policy))).toBe('none');
    expect(code(() => validateNvidiaGpuFacts(FACTS_B, policyOf(FACTS_A)))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
  });

  it('allows any listed value at an index', () => {
    const policy = policyOf(FACTS_A);
    const both = { ...policy, measurements: { ...policy.measurements } };
    for (const [k, v] of Object.entries(FACTS_B.measurements)) both.measurements[Number(k)] = [...both.measurements[Number(k)], v];
    expect(code(() => validateNvidiaGpuFacts(FACTS_B, both))).toBe('none');
  });

  it('refuses unlisted indices unless the policy allows them, and missing ones always', () => {
    const { measurements } = policyOf(FACTS_A);
    const partial = { measurements: { 2: measurements[2], 3: measurements[3] } };
    expect(code(() => validateNvidiaGpuFacts(FACTS_A, partial))).toBe('ERR_POLICY_VIOLATION');
    expect(code(() => validateNvidiaGpuFacts(FACTS_A, { ...partial, allowUnlistedIndices: true }))).toBe('none');
    const extraIndex = { measurements: { ...measurements, 65: ['00'] }, allowUnlistedIndices: true };
    expect(code(() => validateNvidiaGpuFacts(FACTS_A, extraIndex))).toBe('ERR_POLICY_VIOLATION');
  });

  it('checks driver and VBIOS versions', () => {
    const loose = { measurements: {}, allowUnlistedIndices: true };
    const check = (facts: NvidiaGpuFacts, extra: Record<string, unknown>) => code(() => validateNvidiaGpuFacts(facts, nvidiaGpuPolicy({ ...loose, ...extra })));
    expect(check(FACTS_B, { driverVersions: ['550.90.07'] })).toBe('ERR_POLICY_VIOLATION');
    expect(check(FACTS_B, { minDriverVersion: '550.54.15' })).toBe('ERR_POLICY_VIOLATION');
    expect(check(FACTS_A, { minDriverVersion: '550.54.15' })).toBe('none');
    expect(check(FACTS_B, { vbiosVersions: ['96.00.9F.00.01'] })).toBe('ERR_POLICY_VIOLATION');
    expect(check(FACTS_B, { vbiosVersions: ['96.00.5E.00.01'] })).toBe('none');
    const noDriver = { ...FACTS_A, opaque: { fields: [] } };
    expect(check(noDriver, { driverVersions: ['550.90.07'] })).toBe('ERR_POLICY_VIOLATION');
    expect(check(noDriver, { minDriverVersion: '1' })).toBe('ERR_POLICY_VIOLATION');
    expect(check(noDriver, { vbiosVersions: ['96.00.9F.00.01'] })).toBe('ERR_POLICY_VIOLATION');
  });

  it('runs from verifyNvidiaGpuEvidence when a policy is given', async () => {
    const options = { evidence: read('h100-a/report.hex'), certChainPem: read('h100-a/cert_chain.pem'), trustedRoots: [read('nvidia_device_root.pem')], at: new Date('2026-01-01T00:00:00Z') };
    await expect(verifyNvidiaGpuEvidence({ ...options, policy: policyOf(FACTS_A) })).resolves.toEqual(FACTS_A);
    await expect(verifyNvidiaGpuEvidence({ ...options, policy: policyOf(FACTS_B) })).rejects.toMatchObject({ code: 'ERR_MEASUREMENT_NOT_ALLOWED' });
  });
});

describe('nvidiaGpuPolicy', () => {
  it.each([
    ['not an object', 'x'],
    ['no measurements', {}],
    ['an unknown field', { measurements: {}, extra: 1 }],
    ['index 0', { measurements: { 0: ['00'] } }],
    ['index 255', { measurements: { 255: ['00'] } }],
    ['a non-canonical index', { measurements: { '01': ['00'] } }],
    ['no allowed value', { measurements: { 1: [] } }],
    ['a non-hex value', { measurements: { 1: ['0g'] } }],
    ['an odd-length value', { measurements: { 1: ['000'] } }],
    ['a non-boolean allowUnlistedIndices', { measurements: {}, allowUnlistedIndices: 'yes' }],
    ['a non-numeric minimum driver', { measurements: {}, minDriverVersion: '550.x' }],
    ['driver versions not strings', { measurements: {}, driverVersions: [550] }],
  ])('refuses %s', (_, input) => {
    expect(code(() => nvidiaGpuPolicy(input))).toBe('ERR_USAGE');
  });

  it('compares driver versions numerically', () => {
    expect(compareDriverVersions('550.90.07', '550.54.15')).toBe(1);
    expect(compareDriverVersions('545.00', '550')).toBe(-1);
    expect(compareDriverVersions('550.0', '550')).toBe(0);
    expect(compareDriverVersions('1000.1', '999.99')).toBe(1);
  });
});
