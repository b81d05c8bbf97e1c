/**
 * What a manifest update admits that the manifest before it did not: a root, a measurement, a weaker
 * platform policy (SEV-SNP and TDX in detail), AI code, a model for some AI code, an owner. A client
 * lets its inference secret follow an update only when this is empty (workers under the new manifest
 * could then have been admitted under the old one). Each widening is reported as a JSON path with a short reason.
 *
 * Fields this file does not know in detail (added to the schema later) count as widenings whenever
 * they change: unknown means "assume it admits more".
 */
import type { Manifest } from './schema.ts';

export interface AdmissionWidening {
  path: string;
  reason: string;
}

type Json = unknown;

const canonical = (v: Json): string =>
  JSON.stringify(v, (_k, value) => (value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1))) : value));

const same = (a: Json, b: Json): boolean => canonical(a) === canonical(b);

const added = <T>(before: readonly T[], after: readonly T[]): T[] => after.filter((x) => !before.some((y) => same(x, y)));

type SnpReference = NonNullable<Manifest['platforms']['sev-snp']>;

function snpWidenings(before: SnpReference, after: SnpReference, path: string): AdmissionWidening[] {
  const out: AdmissionWidening[] = [];
  for (const root of added(before.trustedRoots, after.trustedRoots)) out.push({ path: `${path}.trustedRoots[${after.trustedRoots.indexOf(root)}]`, reason: 'a new trusted root' });
  for (const m of added(before.measurements, after.measurements)) out.push({ path: `${path}.measurements[${after.measurements.indexOf(m)}]`, reason: `a new measurement ${m.slice(0, 16)}…` });
  for (const flag of ['allowDebug', 'allowMigrationAgent', 'allowSmt'] as const) {
    if (after[flag] && !before[flag]) out.push({ path: `${path}.${flag}`, reason: `${flag} is now allowed` });
  }
  if (before.minTcb) {
    if (!after.minTcb) out.push({ path: `${path}.minTcb`, reason: 'the minimum TCB was removed' });
    else {
      for (const k of Object.keys(before.minTcb) as (keyof SnpReference['minTcb'] & string)[]) {
        if ((after.minTcb as Record<string, number>)[k] < (before.minTcb as Record<string, number>)[k]) out.push({ path: `${path}.minTcb.${k}`, reason: 'a lower minimum TCB' });
      }
    }
  }
  const known = new Set(['trustedRoots', 'measurements', 'allowDebug', 'allowMigrationAgent', 'allowSmt', 'minTcb']);
  out.push(...unknownFieldChanges(before, after, path, known));
  return out;
}

type TdxReference = NonNullable<Manifest['platforms']['tdx']>;

/** Optional value lists: absent admits any value, so dropping one widens, and so does a value added to one. */
const TDX_VALUE_LISTS = ['rtmr0', 'rtmr1', 'rtmr2', 'rtmr3', 'mrConfigId', 'mrOwner'] as const;

function tdxWidenings(before: TdxReference, after: TdxReference, path: string): AdmissionWidening[] {
  const out: AdmissionWidening[] = [];
  for (const root of added(before.trustedRoots, after.trustedRoots)) out.push({ path: `${path}.trustedRoots[${after.trustedRoots.indexOf(root)}]`, reason: 'a new trusted root' });
  for (const m of added(before.mrTd, after.mrTd)) out.push({ path: `${path}.mrTd[${after.mrTd.indexOf(m)}]`, reason: `a new MRTD ${m.slice(0, 16)}…` });
  for (const field of TDX_VALUE_LISTS) {
    const was = before[field];
    const now = after[field];
    if (!was) continue;
    if (!now) out.push({ path: `${path}.${field}`, reason: `${field} is no longer checked` });
    else for (const v of added(was, now)) out.push({ path: `${path}.${field}[${now.indexOf(v)}]`, reason: `a new ${field} value ${v.slice(0, 16)}…` });
  }
  // Defaults as the schema fills them, for manifests built without it.
  const statuses = (r: TdxReference) => r.acceptedTcbStatuses ?? ['UpToDate'];
  for (const s of added(statuses(before), statuses(after))) out.push({ path: `${path}.acceptedTcbStatuses[${statuses(after).indexOf(s)}]`, reason: `TCB status ${s} is now accepted` });
  if (after.allowDebug && !before.allowDebug) out.push({ path: `${path}.allowDebug`, reason: 'allowDebug is now allowed' });
  const known = new Set(['trustedRoots', 'mrTd', ...TDX_VALUE_LISTS, 'acceptedTcbStatuses', 'allowDebug']);
  out.push(...unknownFieldChanges(before, after, path, known));
  return out;
}

function unknownFieldChanges(before: object, after: object, path: string, known: Set<string>): AdmissionWidening[] {
  const b = before as Record<string, Json>;
  const a = after as Record<string, Json>;
  const keys = new Set([...Object.keys(b), ...Object.keys(a)]);
  return [...keys].filter((k) => !known.has(k) && !same(b[k], a[k])).map((k) => ({ path: `${path}.${k}`, reason: 'changed (not known to admit nothing more)' }));
}

export function admissionWidenings(before: Manifest, after: Manifest): AdmissionWidening[] {
  const out: AdmissionWidening[] = [];
  const bp = before.platforms as Record<string, Json>;
  const ap = after.platforms as Record<string, Json>;
  for (const name of Object.keys(ap)) {
    const path = `$.platforms.${name}`;
    if (ap[name] === undefined || same(bp[name], ap[name])) continue;
    if (bp[name] === undefined) out.push({ path, reason: 'a new platform' });
    else if (name === 'sev-snp') out.push(...snpWidenings(bp[name] as SnpReference, ap[name] as SnpReference, path));
    else if (name === 'tdx') out.push(...tdxWidenings(bp[name] as TdxReference, ap[name] as TdxReference, path));
    else out.push({ path, reason: 'changed (not known to admit nothing more)' });
  }
  after.aiCode.forEach((code, i) => {
    const was = before.aiCode.find((c) => c.name === code.name);
    if (!was) out.push({ path: `$.aiCode[${i}]`, reason: `new AI code ${code.name}` });
    else if (!same(was, code)) out.push({ path: `$.aiCode[${i}]`, reason: `AI code ${code.name} changed` });
  });
  after.models.forEach((model, i) => {
    const grants = (m: Manifest) => m.models.filter((x) => x.weightsDigest === model.weightsDigest).flatMap((x) => x.aiCode);
    const newCode = model.aiCode.filter((c) => !grants(before).includes(c));
    if (newCode.length) out.push({ path: `$.models[${i}]`, reason: `model ${model.name} may now be loaded by ${newCode.join(', ')}` });
  });
  after.owners.forEach((o, i) => {
    if (!before.owners.some((p) => same(p, o))) out.push({ path: `$.owners[${i}]`, reason: `new owner ${o.id}` });
  });
  out.push(...unknownFieldChanges(before, after, '$', new Set(['version', 'platforms', 'aiCode', 'models', 'owners', 'limits'])));
  return out;
}
