import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import {
  type SnpReferencePolicy,
  type SnpReport,
  type SnpReportBodyFields,
  assembleSnpReport,
  encodeSnpReportBody,
  parseSnpReport,
  validateSnpReport,
} from './index.ts';

const genoa = parseSnpReport(new Uint8Array(readFileSync(new URL('../../../test/vectors/sev-snp/genoa/report.bin', import.meta.url))));

/** Validation trusts verified fields, so an unsigned report built from fields is enough here. */
function variant(changes: Partial<SnpReportBodyFields>): SnpReport {
  return parseSnpReport(assembleSnpReport(encodeSnpReportBody({ ...genoa, ...changes }), new Uint8Array(96)));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof ObscuraError)) throw e;
    return e.code;
  }
}

const base: SnpReferencePolicy = { measurements: [toHex(genoa.measurement)] };

describe('validateSnpReport', () => {
  it('accepts the report against its own reference values', () => {
    expect(() =>
      validateSnpReport(genoa, {
        ...base,
        reportData: genoa.reportData,
        hostData: toHex(genoa.hostData),
        vmpl: 0,
        minimumTcb: { bootloader: 10, tee: 0, snp: 23, microcode: 84 },
        minimumFirmware: { major: 1, minor: 55, build: 40 },
        minimumGuestSvn: 0,
        allowedSigningKeys: ['vcek'],
        chipIds: [genoa.chipId],
      }),
    ).not.toThrow();
  });

  it('refuses measurements not listed (an empty list admits nothing)', () => {
    expect(codeOf(() => validateSnpReport(genoa, { measurements: ['00'.repeat(48)] }))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    expect(codeOf(() => validateSnpReport(genoa, { measurements: [] }))).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    expect(codeOf(() => validateSnpReport(genoa, { measurements: ['abcd'] }))).toBe('ERR_USAGE');
    expect(codeOf(() => validateSnpReport(genoa, {} as SnpReferencePolicy))).toBe('ERR_USAGE');
  });

  it('compares report_data, host_data and chip_id exactly', () => {
    const other = genoa.reportData.slice();
    other[63] ^= 1;
    expect(codeOf(() => validateSnpReport(genoa, { ...base, reportData: other }))).toBe('ERR_VALUE_MISMATCH');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, reportData: genoa.reportData.subarray(0, 32) }))).toBe('ERR_USAGE');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, hostData: new Uint8Array(32).fill(1) }))).toBe('ERR_VALUE_MISMATCH');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, chipIds: [new Uint8Array(64)] }))).toBe('ERR_VALUE_MISMATCH');
  });

  it('refuses DEBUG and a migration agent unless allowed; SMT only when forbidden; single socket when required', () => {
    const debug = variant({ policy: { smt: true, debug: true } });
    expect(codeOf(() => validateSnpReport(debug, base))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(debug, { ...base, allowDebug: true }))).toBeUndefined();
    const ma = variant({ policy: { smt: true, migrationAgent: true } });
    expect(codeOf(() => validateSnpReport(ma, base))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(ma, { ...base, allowMigrationAgent: true }))).toBeUndefined();
    expect(codeOf(() => validateSnpReport(genoa, { ...base, allowSmt: false }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(variant({ policy: { smt: false } }), { ...base, allowSmt: false }))).toBeUndefined();
    expect(codeOf(() => validateSnpReport(genoa, { ...base, requireSingleSocket: true }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(variant({ policy: { smt: true, singleSocket: true } }), { ...base, requireSingleSocket: true }))).toBeUndefined();
  });

  it('expects the VMPL', () => {
    expect(codeOf(() => validateSnpReport(variant({ vmpl: 2 }), { ...base, vmpl: 0 }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(variant({ vmpl: 2 }), { ...base, vmpl: 2 }))).toBeUndefined();
  });

  it('enforces minimum TCB per component on reported, current and committed TCBs', () => {
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumTcb: { snp: 24 } }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumTcb: { microcode: 85 } }))).toBe('ERR_POLICY_VIOLATION');
    const oldCommitted = variant({ committedTcb: { bootloader: 9, tee: 0, snp: 23, microcode: 84 } });
    expect(codeOf(() => validateSnpReport(oldCommitted, { ...base, minimumTcb: { bootloader: 10 } }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(oldCommitted, { ...base, minimumTcb: { bootloader: 9 } }))).toBeUndefined();
  });

  it('enforces minimum firmware and guest SVN', () => {
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumFirmware: { major: 1, minor: 55, build: 41 } }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumFirmware: { major: 1, minor: 56, build: 0 } }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumFirmware: { major: 1, minor: 54, build: 99 } }))).toBeUndefined();
    expect(codeOf(() => validateSnpReport(genoa, { ...base, minimumGuestSvn: 1 }))).toBe('ERR_POLICY_VIOLATION');
  });

  it('restricts the signing key', () => {
    expect(codeOf(() => validateSnpReport(genoa, { ...base, allowedSigningKeys: ['vlek'] }))).toBe('ERR_POLICY_VIOLATION');
    const vlek = variant({ signerInfo: { authorKeyEn: false, maskChipKey: false, signingKey: 'vlek' } });
    expect(codeOf(() => validateSnpReport(vlek, base))).toBeUndefined();
    expect(codeOf(() => validateSnpReport(vlek, { ...base, allowedSigningKeys: ['vcek'] }))).toBe('ERR_POLICY_VIOLATION');
  });
});
