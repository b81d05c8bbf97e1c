/** The manifest's `platforms.tdx` reference values: defaults, and each problem reported at its JSON path. */
import { describe, expect, it } from 'vitest';
import { manifestProblems, parseManifest } from './validate-manifest.ts';

const ROOT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const MRTD = 'ab'.repeat(48);
const doc = (tdx: unknown) => ({
  version: 1,
  platforms: { tdx },
  aiCode: [{ name: 'code-a', imageDigest: `sha256:${'01'.repeat(32)}`, command: ['/app/run'], sandbox: { network: 'none', memoryLimitBytes: 1 << 30, pidsLimit: 64, cpuQuotaPercent: 100, scratchBytes: 1 << 20 } }],
  owners: [{ id: 'alice', publicKeyJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } }],
  limits: { secretLifetimeMs: 3_600_000, bundleMaxAgeMs: 600_000, replayWindowMs: 300_000, workerCertLifetimeMs: 3_600_000 },
});
const paths = (tdx: unknown) => manifestProblems(doc(tdx)).map((p) => p.path);

describe('platforms.tdx', () => {
  it('defaults to UpToDate only and no debug TD', () => {
    expect(parseManifest(doc({ trustedRoots: [ROOT], mrTd: [MRTD] })).platforms.tdx).toEqual({ trustedRoots: [ROOT], mrTd: [MRTD], acceptedTcbStatuses: ['UpToDate'], allowDebug: false });
  });

  it('takes RTMRs, MRCONFIGID, MROWNER and any of Intel\'s statuses', () => {
    const full = { trustedRoots: [ROOT], mrTd: [MRTD], rtmr0: [MRTD], rtmr3: [MRTD], mrConfigId: [MRTD], mrOwner: [MRTD], acceptedTcbStatuses: ['UpToDate', 'SWHardeningNeeded', 'TDRelaunchAdvised'], allowDebug: false };
    expect(paths(full)).toEqual([]);
  });

  it('reports each problem at its path', () => {
    expect(paths({ trustedRoots: [], mrTd: [MRTD] })).toEqual(['$.platforms.tdx.trustedRoots']);
    expect(paths({ trustedRoots: ['not a certificate'], mrTd: [MRTD] })).toEqual(['$.platforms.tdx.trustedRoots[0]']);
    expect(paths({ trustedRoots: [ROOT] })).toEqual(['$.platforms.tdx.mrTd']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD.toUpperCase()] })).toEqual(['$.platforms.tdx.mrTd[0]']);
    expect(paths({ trustedRoots: [ROOT], mrTd: ['ab'.repeat(32)] })).toEqual(['$.platforms.tdx.mrTd[0]']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], rtmr2: [] })).toEqual(['$.platforms.tdx.rtmr2']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], mrOwner: ['zz'] })).toEqual(['$.platforms.tdx.mrOwner[0]']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], acceptedTcbStatuses: ['Revoked'] })).toEqual(['$.platforms.tdx.acceptedTcbStatuses[0]']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], acceptedTcbStatuses: [] })).toEqual(['$.platforms.tdx.acceptedTcbStatuses']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], allowDebug: 'no' })).toEqual(['$.platforms.tdx.allowDebug']);
    expect(paths({ trustedRoots: [ROOT], mrTd: [MRTD], rtmr4: [MRTD] })).toEqual(['$.platforms.tdx']);
  });
});
