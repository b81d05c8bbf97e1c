/** `obscura up` keeps a manifest only while it admits every reference value of this checkout. */
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../shared/manifest/schema.ts';
import { admitsReference } from '../../client/cli/commands/manifest/local-admin.ts';
import { makeOwner, testManifest } from '../as/fixtures.ts';

const ROOT = '-----BEGIN CERTIFICATE-----\nR\n-----END CERTIFICATE-----';
const OTHER_ROOT = '-----BEGIN CERTIFICATE-----\nO\n-----END CERTIFICATE-----';
const M = 'aa'.repeat(48);

describe('admitsReference', async () => {
  const base = testManifest({ rootPems: [ROOT], workerMeasurements: [M], owners: [await makeOwner('o')] });
  const reference: Manifest = {
    ...base,
    platforms: { ...base.platforms, tdx: { trustedRoots: [ROOT], mrTd: [M], acceptedTcbStatuses: ['UpToDate'], allowDebug: false } },
    gpus: { 'nvidia-h100': { trustedRoots: [ROOT] } } as Manifest['gpus'],
    attestationService: { measurements: ['bb'.repeat(48)] },
  };

  it('keeps a manifest that admits all of it, and more', () => {
    expect(admitsReference(reference, reference)).toBe(true);
    const wider = { ...reference, platforms: { ...reference.platforms, tdx: { ...reference.platforms.tdx!, mrTd: [M, 'cc'.repeat(48)], trustedRoots: [ROOT, OTHER_ROOT] } } };
    expect(admitsReference(wider, reference)).toBe(true);
  });

  it('updates one that misses a TDX root or MRTD, a GPU kind or root, or the service image', () => {
    const variants: Manifest[] = [
      { ...reference, platforms: { 'sev-snp': reference.platforms['sev-snp'] } },
      { ...reference, platforms: { ...reference.platforms, tdx: { ...reference.platforms.tdx!, mrTd: ['cc'.repeat(48)] } } },
      { ...reference, platforms: { ...reference.platforms, tdx: { ...reference.platforms.tdx!, trustedRoots: [OTHER_ROOT] } } },
      { ...reference, gpus: undefined },
      { ...reference, gpus: { 'nvidia-h100': { trustedRoots: [OTHER_ROOT] } } as Manifest['gpus'] },
      { ...reference, attestationService: undefined },
      { ...reference, platforms: { ...reference.platforms, 'sev-snp': { ...reference.platforms['sev-snp']!, measurements: ['dd'.repeat(48)] } } },
    ];
    for (const v of variants) expect(admitsReference(v, reference)).toBe(false);
  });
});
