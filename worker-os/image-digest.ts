/**
 * Digests of what runs: a directory tree's digest (AI code given as a directory, for local use) and
 * the launch measurement of the worker and service images (what worker-os/images.json lists).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { encodeDeterministic } from '../shared/cbor.ts';

export const PROJECT_ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

function listFiles(root: string, rel: string, exclude: (path: string) => boolean, out: string[]): void {
  const abs = join(root, rel);
  const st = statSync(abs);
  if (st.isFile()) {
    if (!exclude(rel)) out.push(rel);
    return;
  }
  for (const name of readdirSync(abs).sort()) {
    const child = rel ? `${rel}/${name}` : name;
    if (exclude(child)) continue;
    listFiles(root, child, exclude, out);
  }
}

function fileTable(root: string, include: readonly string[], exclude: (path: string) => boolean): [string, string][] {
  const files: string[] = [];
  for (const inc of include) listFiles(root, inc, exclude, files);
  return [...new Set(files)].sort().map((f) => [f.split(sep).join('/'), createHash('sha256').update(readFileSync(join(root, f))).digest('hex')]);
}

/** sha256 over the sorted (path, sha256) table of a directory: the local form of an image digest. */
export function directoryDigest(dir: string): string {
  const table = fileTable(dir, [''], () => false).map(([p, h]) => [relative('', p), h]);
  return `sha256:${createHash('sha256').update(encodeDeterministic(table)).digest('hex')}`;
}

interface ImageDefinition {
  include: string[];
  exclude: string[];
}

const IMAGES: Record<string, ImageDefinition> = JSON.parse(readFileSync(new URL('./images.json', import.meta.url), 'utf8'));

export type ImageName = 'worker' | 'attestation-service';

function excluder(patterns: readonly string[]): (path: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '(?:.*/)?').replace(/\*/g, '[^/]*')}$`));
  return (path) => res.some((r) => r.test(path));
}

/**
 * The launch measurement (48 bytes, SNP's size): SHA-384 over the image's file table and its measured
 * configuration. On real hardware the platform measures the CVM image at launch; the simulated TEE
 * takes this value, so editing any listed file or the configuration changes the measurement.
 */
export function imageMeasurement(image: ImageName, config: Record<string, unknown>, root = PROJECT_ROOT): Uint8Array {
  const def = IMAGES[image];
  const table = fileTable(root, def.include, excluder(def.exclude));
  return new Uint8Array(createHash('sha384').update(encodeDeterministic({ image, files: table, config })).digest());
}
