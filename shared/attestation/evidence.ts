/**
 * Evidence as it travels (inside bundles and worker registrations): the platform's raw report and the
 * certificates it needs. Trusted roots are never part of it: they come from the verifier's policy.
 */
import { asRecord, fieldBytes, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';

export interface SevSnpEvidence {
  platform: 'sev-snp';
  report: Uint8Array; // 1184-byte ATTESTATION_REPORT
  vcek: Uint8Array; // DER
  ask: Uint8Array; // DER
}

export type Evidence = SevSnpEvidence;

export function encodeEvidence(e: Evidence): Record<string, unknown> {
  return { platform: e.platform, report: e.report, vcek: e.vcek, ask: e.ask };
}

export function parseEvidence(value: unknown, where: string): Evidence {
  const m = asRecord(value, where);
  const platform = fieldString(m, 'platform', where);
  if (platform !== 'sev-snp') throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `${where}.platform "${platform}" is not supported`);
  return { platform, report: fieldBytes(m, 'report', where), vcek: fieldBytes(m, 'vcek', where), ask: fieldBytes(m, 'ask', where) };
}
