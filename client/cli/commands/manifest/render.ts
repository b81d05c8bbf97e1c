/** Text renderings of manifests and chain entries for `obscura manifest show|history`. */
import { toHex } from '../../../../shared/bytes.ts';
import type { ManifestChainEntry } from '../../../../shared/manifest/chain.ts';
import type { Manifest } from '../../../../shared/manifest/schema.ts';
import type { ManifestProblem } from '../../../../shared/manifest/validate-manifest.ts';

const when = (ms: number) => new Date(ms).toISOString();

export function entryLine(entry: ManifestChainEntry, hash: Uint8Array): string {
  return `entry ${entry.seq}  ${when(entry.setAt)}  by ${entry.authorizedBy}  manifest sha256:${toHex(entry.manifestSha256).slice(0, 16)}…  head ${toHex(hash).slice(0, 16)}…`;
}

export function manifestLines(m: Manifest): string[] {
  const lines: string[] = [];
  lines.push(`owners: ${m.owners.map((o) => o.id).join(', ')}`);
  const snp = m.platforms['sev-snp'];
  if (snp) {
    lines.push(`sev-snp: ${snp.trustedRoots.length} trusted root(s), debug ${snp.allowDebug ? 'allowed' : 'refused'}${snp.minTcb ? `, min TCB ${JSON.stringify(snp.minTcb)}` : ''}`);
    for (const meas of snp.measurements) lines.push(`  measurement ${meas}`);
  }
  const tdx = m.platforms.tdx;
  if (tdx) {
    lines.push(`tdx: ${tdx.trustedRoots.length} trusted root(s), debug ${tdx.allowDebug ? 'allowed' : 'refused'}, TCB status ${tdx.acceptedTcbStatuses.join(' | ')}`);
    for (const mrTd of tdx.mrTd) lines.push(`  MRTD ${mrTd}`);
    const checked = (['rtmr0', 'rtmr1', 'rtmr2', 'rtmr3', 'mrConfigId', 'mrOwner'] as const).filter((k) => tdx[k]);
    if (checked.length) lines.push(`  also checked: ${checked.join(', ')}`);
  }
  for (const [kind, gpu] of Object.entries(m.gpus ?? {})) {
    if (!gpu) continue;
    const driver = gpu.driverVersions ? `driver ${gpu.driverVersions.join(' | ')}` : gpu.minDriverVersion ? `driver >= ${gpu.minDriverVersion}` : 'any driver';
    lines.push(
      `gpu ${kind}: ${gpu.required ? 'required' : 'optional'}, ${gpu.trustedRoots.length} trusted root(s), ${Object.keys(gpu.measurements).length} measurement index(es)` +
        `${gpu.allowUnlistedIndices ? ' (others unchecked)' : ''}, ${driver}${gpu.vbiosVersions ? `, VBIOS ${gpu.vbiosVersions.join(' | ')}` : ''}`,
    );
  }
  if (m.attestationService) for (const meas of m.attestationService.measurements) lines.push(`attestation service image: ${meas}`);
  for (const a of m.aiCode) lines.push(`ai code: ${a.name}  ${a.imageDigest}  ${a.command.join(' ')}  (network ${a.sandbox.network}, memory ${a.sandbox.memoryLimitBytes} B)`);
  for (const model of m.models) lines.push(`model: ${model.name}  ${model.weightsDigest}  for ${model.aiCode.join(', ')}`);
  const l = m.limits;
  lines.push(`limits: secret lifetime ${l.secretLifetimeMs} ms, bundle max age ${l.bundleMaxAgeMs} ms, replay window ${l.replayWindowMs} ms, worker certificate ${l.workerCertLifetimeMs} ms`);
  return lines;
}

export function problemLines(file: string, problems: readonly ManifestProblem[]): string[] {
  return [`${file} is not a valid manifest:`, ...problems.map((p) => `  ${p.path}: ${p.message}`)];
}
