/**
 * Reference values for NVIDIA GPU evidence, as a manifest names them. `nvidiaGpuPolicy` checks the shape
 * of a policy from untrusted JSON/CBOR and normalises it (hex lowercase, VBIOS versions uppercase).
 */
import { ObscuraError } from '../../errors.ts';

export interface NvidiaGpuPolicy {
  /** Measurement index (1..254) -> the values allowed there, hex. */
  readonly measurements: Readonly<Record<number, readonly string[]>>;
  /**
   * By default every index the GPU reports must be listed: an unlisted one would be unchecked firmware.
   * Set to accept indices the policy does not name.
   */
  readonly allowUnlistedIndices?: boolean;
  /** Exact driver versions allowed, e.g. "550.90.07". */
  readonly driverVersions?: readonly string[];
  /** Lowest driver version allowed, compared numerically part by part. */
  readonly minDriverVersion?: string;
  /** Exact VBIOS versions allowed, e.g. "96.00.9F.00.01" (case-insensitive). */
  readonly vbiosVersions?: readonly string[];
}

const INDEX_MIN = 1;
const INDEX_MAX = 0xfe;
const HEX = /^(?:[0-9a-f]{2})+$/;
const DRIVER_VERSION = /^\d+(?:\.\d+)*$/;

export function nvidiaGpuPolicy(input: unknown): NvidiaGpuPolicy {
  const obj = record(input, 'policy');
  const known = new Set(['measurements', 'allowUnlistedIndices', 'driverVersions', 'minDriverVersion', 'vbiosVersions']);
  for (const key of Object.keys(obj)) if (!known.has(key)) throw usage(`unknown policy field "${key}"`);

  const measurements: Record<number, string[]> = {};
  for (const [key, values] of Object.entries(record(obj.measurements, 'policy.measurements'))) {
    const index = Number(key);
    if (!Number.isInteger(index) || String(index) !== key || index < INDEX_MIN || index > INDEX_MAX) {
      throw usage(`measurement index "${key}" is not ${INDEX_MIN}..${INDEX_MAX}`);
    }
    const list = strings(values, `policy.measurements[${key}]`).map((v) => v.toLowerCase());
    if (list.length === 0) throw usage(`measurement index ${key} allows no value`);
    for (const v of list) if (!HEX.test(v)) throw usage(`measurement index ${key}: "${v}" is not hex`);
    measurements[index] = list;
  }

  const policy: { -readonly [K in keyof NvidiaGpuPolicy]: NvidiaGpuPolicy[K] } = { measurements };
  if (obj.allowUnlistedIndices !== undefined) {
    if (typeof obj.allowUnlistedIndices !== 'boolean') throw usage('allowUnlistedIndices must be a boolean');
    policy.allowUnlistedIndices = obj.allowUnlistedIndices;
  }
  if (obj.driverVersions !== undefined) policy.driverVersions = strings(obj.driverVersions, 'policy.driverVersions');
  if (obj.minDriverVersion !== undefined) {
    if (typeof obj.minDriverVersion !== 'string' || !DRIVER_VERSION.test(obj.minDriverVersion)) {
      throw usage('minDriverVersion must be dotted decimal, e.g. "550.90.07"');
    }
    policy.minDriverVersion = obj.minDriverVersion;
  }
  if (obj.vbiosVersions !== undefined) {
    policy.vbiosVersions = strings(obj.vbiosVersions, 'policy.vbiosVersions').map((v) => v.toUpperCase());
  }
  return policy;
}

/** Numeric, part by part ("550.90.07" > "550.54.15"); missing parts count as 0. */
export function compareDriverVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function isDriverVersion(text: string): boolean {
  return DRIVER_VERSION.test(text);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usage(`${where} must be an object`);
  return value as Record<string, unknown>;
}

function strings(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw usage(`${where} must be a list of strings`);
  return [...value];
}

function usage(message: string): ObscuraError {
  return new ObscuraError('ERR_USAGE', `NVIDIA GPU policy: ${message}`);
}
