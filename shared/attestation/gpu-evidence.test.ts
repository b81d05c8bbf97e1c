/**
 * GPU evidence on the wire and against a manifest's reference values, with the real H100 vector
 * (h100-a): its own measurements, driver and VBIOS as reference values admit it under NVIDIA's root.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex } from '../bytes.ts';
import { decodeStrict, encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { encodeGpuEvidence, parseGpuEvidence, parseGpuEvidenceList, type GpuEvidence } from './gpu-evidence.ts';
import { parseNvidiaSpdmEvidence } from './nvidia/spdm.ts';
import { decodePem } from './x509/pem.ts';
import { verifyGpuEvidenceAgainstReference, type NvidiaGpuReference } from './verify-evidence.ts';

const read = (path: string) => readFileSync(new URL(`../../test/vectors/nvidia/${path}`, import.meta.url), 'utf8');
const ROOT = read('nvidia_device_root.pem');
const SPDM = fromHex(read('h100-a/report.hex').trim());
const CHAIN = decodePem(read('h100-a/cert_chain.pem'));
const NONCE = parseNvidiaSpdmEvidence(SPDM).request.nonce;
const NOW = new Date('2026-01-01T00:00:00Z');
const EVIDENCE: GpuEvidence = { kind: 'nvidia-h100', spdm: SPDM, certChain: CHAIN };

function reference(overrides: Partial<NvidiaGpuReference> = {}): NvidiaGpuReference {
  const measurements: Record<string, string[]> = {};
  for (const b of parseNvidiaSpdmEvidence(SPDM).response.blocks) measurements[String(b.index)] = [[...b.value].map((x) => x.toString(16).padStart(2, '0')).join('')];
  return { trustedRoots: [ROOT], measurements, minDriverVersion: '550.90.07', vbiosVersions: ['96.00.9f.00.01'], ...overrides };
}

const codeOf = (p: Promise<unknown>) => p.then(() => 'none', (e) => (e instanceof ObscuraError ? e.code : String(e)));

describe('GPU evidence on the wire', () => {
  it('round-trips through deterministic CBOR', () => {
    const back = parseGpuEvidence(decodeStrict(encodeDeterministic(encodeGpuEvidence(EVIDENCE)), 'gpu'), 'gpu');
    expect(back.kind).toBe('nvidia-h100');
    expect(back.spdm).toEqual(SPDM);
    expect(back.certChain).toEqual(CHAIN);
    expect(parseGpuEvidenceList(undefined, 'gpus')).toEqual([]);
  });

  it('refuses other kinds, wrong types, empty or oversized parts, and too many GPUs', () => {
    const bad: [unknown, string][] = [
      [{ ...encodeGpuEvidence(EVIDENCE), kind: 'amd-mi300x' }, 'ERR_UNSUPPORTED_VERSION'],
      [{ ...encodeGpuEvidence(EVIDENCE), spdm: 'hex' }, 'ERR_MALFORMED'],
      [{ ...encodeGpuEvidence(EVIDENCE), spdm: new Uint8Array(0) }, 'ERR_MALFORMED'],
      [{ ...encodeGpuEvidence(EVIDENCE), spdm: new Uint8Array(65 * 1024) }, 'ERR_MALFORMED'],
      [{ ...encodeGpuEvidence(EVIDENCE), certChain: [] }, 'ERR_MALFORMED'],
      [{ ...encodeGpuEvidence(EVIDENCE), certChain: [CHAIN[0], 'pem'] }, 'ERR_MALFORMED'],
      [{ ...encodeGpuEvidence(EVIDENCE), certChain: Array(9).fill(CHAIN[0]) }, 'ERR_MALFORMED'],
      ['evidence', 'ERR_MALFORMED'],
    ];
    for (const [value, code] of bad) expect(() => parseGpuEvidence(value, 'gpu')).toThrow(expect.objectContaining({ code }));
    expect(() => parseGpuEvidenceList(Array(9).fill(encodeGpuEvidence(EVIDENCE)), 'gpus')).toThrow(expect.objectContaining({ code: 'ERR_MALFORMED' }));
    expect(() => parseGpuEvidenceList({}, 'gpus')).toThrow(expect.objectContaining({ code: 'ERR_MALFORMED' }));
  });
});

describe('verifyGpuEvidenceAgainstReference with the real h100-a evidence', () => {
  it('admits it under its own reference values and reports its facts', async () => {
    const facts = await verifyGpuEvidenceAgainstReference(EVIDENCE, { 'nvidia-h100': reference() }, NOW, NONCE);
    expect(facts).toMatchObject({ kind: 'nvidia-h100', driverVersion: '550.90.07', vbiosVersion: '96.00.9F.00.01', measurementCount: 64 });
    expect(facts.fwid).toBe('f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d');
    expect(facts.root.subject).toMatch(/NVIDIA Device Identity CA/);
    expect(facts.measurementsSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses it without reference values, for another nonce, under another root, or outside the values', async () => {
    const ok = { 'nvidia-h100': reference() };
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, {}, NOW, NONCE))).toBe('ERR_POLICY_VIOLATION');
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, ok, NOW, new Uint8Array(32)))).toBe('ERR_VALUE_MISMATCH');
    const foreignRoot = read('h100-b/cert_chain.pem').split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n';
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, { 'nvidia-h100': reference({ trustedRoots: [foreignRoot] }) }, NOW, NONCE))).toBe('ERR_UNTRUSTED_ROOT');
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, { 'nvidia-h100': reference({ minDriverVersion: '550.127.05' }) }, NOW, NONCE))).toBe('ERR_POLICY_VIOLATION');
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, { 'nvidia-h100': reference({ vbiosVersions: ['96.00.5E.00.01'] }) }, NOW, NONCE))).toBe('ERR_POLICY_VIOLATION');
    const m = reference().measurements;
    expect(await codeOf(verifyGpuEvidenceAgainstReference(EVIDENCE, { 'nvidia-h100': reference({ measurements: { ...m, 3: ['00'.repeat(48)] } }) }, NOW, NONCE))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    const tampered = { ...EVIDENCE, spdm: SPDM.slice() };
    tampered.spdm[37 + 8 + 55 + 7 + 10] ^= 1; // in block 2's value
    expect(await codeOf(verifyGpuEvidenceAgainstReference(tampered, ok, NOW, NONCE))).toBe('ERR_SIGNATURE_INVALID');
  });
});
