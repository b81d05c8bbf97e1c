import { describe, expect, it } from 'vitest';
import { admissionWidenings } from './admission-widening.ts';
import type { Manifest } from './schema.ts';

const ROOT_A = '-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----';
const ROOT_B = '-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----';
const M1 = 'aa'.repeat(48);
const M2 = 'bb'.repeat(48);

const base: Manifest = {
  version: 1,
  platforms: { 'sev-snp': { trustedRoots: [ROOT_A], measurements: [M1, M2], minTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 }, allowDebug: false, allowMigrationAgent: false, allowSmt: true } },
  aiCode: [{ name: 'code-a', imageDigest: `sha256:${'01'.repeat(32)}`, command: ['/app/run'], sandbox: { network: 'none', memoryLimitBytes: 1 << 30, pidsLimit: 64, cpuQuotaPercent: 100, scratchBytes: 1 << 20 } }],
  models: [{ name: 'model-x', weightsDigest: `sha256:${'02'.repeat(32)}`, aiCode: ['code-a'] }],
  owners: [{ id: 'alice', publicKeyJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } }],
  limits: { secretLifetimeMs: 3_600_000, bundleMaxAgeMs: 600_000, replayWindowMs: 300_000, workerCertLifetimeMs: 3_600_000 },
} as Manifest;

const snp = (m: Manifest) => m.platforms['sev-snp']!;
const paths = (after: Manifest) => admissionWidenings(base, after).map((w) => w.path);

describe('admission widenings', () => {
  it('none for narrowing: fewer measurements, a higher TCB floor, tighter limits, a model for less code', () => {
    expect(paths(base)).toEqual([]);
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), measurements: [M1], minTcb: { bootloader: 4, tee: 0, snp: 9, microcode: 115 } } } })).toEqual([]);
    expect(paths({ ...base, limits: { ...base.limits, replayWindowMs: 1000 }, models: [] })).toEqual([]);
  });

  it('reports each thing admitted anew, by path', () => {
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), trustedRoots: [ROOT_A, ROOT_B] } } })).toEqual(['$.platforms.sev-snp.trustedRoots[1]']);
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), measurements: [M1, 'cc'.repeat(48)] } } })).toEqual(['$.platforms.sev-snp.measurements[1]']);
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), allowDebug: true } } })).toEqual(['$.platforms.sev-snp.allowDebug']);
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), minTcb: { bootloader: 3, tee: 0, snp: 7, microcode: 115 } } } })).toEqual(['$.platforms.sev-snp.minTcb.snp']);
    expect(paths({ ...base, platforms: { 'sev-snp': { ...snp(base), minTcb: undefined } } })).toEqual(['$.platforms.sev-snp.minTcb']);
    const codeB = { ...base.aiCode[0], name: 'code-b' };
    expect(paths({ ...base, aiCode: [...base.aiCode, codeB] })).toEqual(['$.aiCode[1]']);
    expect(paths({ ...base, aiCode: [{ ...base.aiCode[0], command: ['/app/other'] }] })).toEqual(['$.aiCode[0]']);
    expect(paths({ ...base, aiCode: [...base.aiCode, codeB], models: [{ ...base.models[0], aiCode: ['code-a', 'code-b'] }] })).toEqual(['$.aiCode[1]', '$.models[0]']);
    expect(paths({ ...base, owners: [...base.owners, { id: 'mallory', publicKeyJwk: { kty: 'EC', crv: 'P-256', x: 'm', y: 'm' } }] })).toEqual(['$.owners[1]']);
  });

  it('counts a field it does not know as a widening whenever it changes', () => {
    const withCca = { ...base, platforms: { ...base.platforms, cca: { anything: 1 } } } as unknown as Manifest;
    expect(paths(withCca)).toEqual(['$.platforms.cca']);
    expect(admissionWidenings(withCca, { ...withCca, platforms: { ...withCca.platforms, cca: { anything: 2 } } } as unknown as Manifest).map((w) => w.path)).toEqual(['$.platforms.cca']);
    expect(paths({ ...base, someFutureField: { x: 1 } } as unknown as Manifest)).toEqual(['$.someFutureField']);
  });
});

describe('admission widenings of the TDX reference', () => {
  const R1 = 'dd'.repeat(48);
  const R2 = 'ee'.repeat(48);
  const tdx: NonNullable<Manifest['platforms']['tdx']> = {
    trustedRoots: [ROOT_A],
    mrTd: [M1, M2],
    rtmr1: [R1],
    mrOwner: [R2],
    acceptedTcbStatuses: ['UpToDate', 'SWHardeningNeeded'],
    allowDebug: false,
  };
  const withTdx: Manifest = { ...base, platforms: { ...base.platforms, tdx } };
  const tdxPaths = (change: Partial<typeof tdx>) =>
    admissionWidenings(withTdx, { ...withTdx, platforms: { ...withTdx.platforms, tdx: { ...tdx, ...change } } }).map((w) => w.path);

  it('a new TDX platform widens; the same one does not', () => {
    expect(paths(withTdx)).toEqual(['$.platforms.tdx']);
    expect(admissionWidenings(withTdx, withTdx)).toEqual([]);
  });

  it('none for narrowing: fewer MRTDs, fewer statuses, a newly checked RTMR or MRCONFIGID, fewer RTMR values', () => {
    expect(tdxPaths({ mrTd: [M2], acceptedTcbStatuses: ['UpToDate'] })).toEqual([]);
    expect(tdxPaths({ rtmr0: [R1], mrConfigId: [R2] })).toEqual([]);
    expect(tdxPaths({ rtmr1: [R1], mrOwner: [R2] })).toEqual([]);
  });

  it('reports each thing admitted anew, by path', () => {
    expect(tdxPaths({ trustedRoots: [ROOT_A, ROOT_B] })).toEqual(['$.platforms.tdx.trustedRoots[1]']);
    expect(tdxPaths({ mrTd: [M1, M2, 'cc'.repeat(48)] })).toEqual(['$.platforms.tdx.mrTd[2]']);
    expect(tdxPaths({ rtmr1: [R1, R2] })).toEqual(['$.platforms.tdx.rtmr1[1]']);
    expect(tdxPaths({ rtmr1: undefined })).toEqual(['$.platforms.tdx.rtmr1']);
    expect(tdxPaths({ mrOwner: undefined })).toEqual(['$.platforms.tdx.mrOwner']);
    expect(tdxPaths({ acceptedTcbStatuses: ['UpToDate', 'SWHardeningNeeded', 'OutOfDate'] })).toEqual(['$.platforms.tdx.acceptedTcbStatuses[2]']);
    expect(tdxPaths({ allowDebug: true })).toEqual(['$.platforms.tdx.allowDebug']);
  });

  it('a field of the TDX reference it does not know widens whenever it changes', () => {
    expect(tdxPaths({ mrSeam: ['00'] } as unknown as Partial<typeof tdx>)).toEqual(['$.platforms.tdx.mrSeam']);
  });
});
