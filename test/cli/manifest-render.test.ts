/** `obscura manifest show` names every platform, GPU kind and service image the manifest admits. */
import { expect, it } from 'vitest';
import type { Manifest } from '../../shared/manifest/schema.ts';
import { manifestLines } from '../../client/cli/commands/manifest/render.ts';
import { makeOwner, testManifest } from '../as/fixtures.ts';

const ROOT = '-----BEGIN CERTIFICATE-----\nR\n-----END CERTIFICATE-----';

it('renders TDX, GPU and attestation service references', async () => {
  const base = testManifest({ rootPems: [ROOT], workerMeasurements: ['aa'.repeat(48)], owners: [await makeOwner('o')] });
  const m: Manifest = {
    ...base,
    platforms: { ...base.platforms, tdx: { trustedRoots: [ROOT], mrTd: ['bb'.repeat(48)], rtmr1: ['cc'.repeat(48)], acceptedTcbStatuses: ['UpToDate', 'SWHardeningNeeded'], allowDebug: false } },
    gpus: { 'nvidia-h100': { trustedRoots: [ROOT], measurements: { '1': ['dd'.repeat(48)] }, allowUnlistedIndices: false, minDriverVersion: '550.90.07', required: true } },
    attestationService: { measurements: ['ee'.repeat(48)] },
  };
  const text = manifestLines(m).join('\n');
  expect(text).toContain('tdx: 1 trusted root(s), debug refused, TCB status UpToDate | SWHardeningNeeded');
  expect(text).toContain(`MRTD ${'bb'.repeat(48)}`);
  expect(text).toContain('also checked: rtmr1');
  expect(text).toContain('gpu nvidia-h100: required, 1 trusted root(s), 1 measurement index(es), driver >= 550.90.07');
  expect(text).toContain(`attestation service image: ${'ee'.repeat(48)}`);
  expect(manifestLines(base).join('\n')).not.toMatch(/tdx|gpu|attestation service image/);
});
