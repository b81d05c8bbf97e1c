/**
 * Building OCI image layouts for tests: a tiny tar writer (ustar, PAX for long names), gzip via
 * node:zlib, and the layout (oci-layout, index.json, blobs/sha256/...) with config diff_ids.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { OCI_CONFIG_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, OCI_MANIFEST_MEDIA_TYPE } from '../../worker-os/oci-image.ts';

export interface TarEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  data?: Uint8Array | string;
  mode?: number;
  linkname?: string;
}

const TYPE_FLAG = { file: '0', dir: '5', symlink: '2', hardlink: '1' } as const;

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0';
}

function header(name: string, size: number, type: string, mode: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.fill(0x20, 148, 156);
  h.write(type, 156, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function withPadding(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return [data, Buffer.alloc(pad)];
}

/** A tar archive of `entries`, in order. Names longer than 100 bytes get a PAX header. */
export function tar(entries: TarEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    let name = type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
    if (Buffer.byteLength(name) > 100) {
      const record = (k: string, v: string) => {
        const body = ` ${k}=${v}\n`;
        let len = body.length + 2;
        while (String(len).length + body.length !== len) len = String(len).length + body.length;
        return `${len}${body}`;
      };
      const pax = Buffer.from(record('path', name));
      out.push(header('PaxHeader', pax.length, 'x', 0o644), ...withPadding(pax));
      name = name.slice(0, 99);
    }
    out.push(header(name, data.length, TYPE_FLAG[type], e.mode ?? (type === 'dir' ? 0o755 : 0o644), e.linkname ?? ''), ...withPadding(data));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** Every file under `dir` as tar entries (relative paths, directories first). */
export function directoryEntries(dir: string, prefix = ''): TarEntry[] {
  const out: TarEntry[] = [];
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = statSync(join(dir, rel));
    if (st.isDirectory()) out.push({ name: rel, type: 'dir' }, ...directoryEntries(dir, rel));
    else out.push({ name: rel, data: readFileSync(join(dir, rel)), mode: st.mode & 0o777 });
  }
  return out;
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface BuiltLayout {
  dir: string;
  manifestDigest: string;
  layerDigests: string[];
  blob(digest: string): string; // its path
}

/** Write an OCI image layout with these layers (tar bytes); gzip unless `gzip: false`. */
export function writeOciLayout(dir: string, layers: Buffer[], opts: { gzip?: boolean; diffIds?: string[] } = {}): BuiltLayout {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (bytes: Uint8Array) => {
    const digest = sha256(bytes);
    writeFileSync(join(blobs, digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  const gzip = opts.gzip !== false;
  const layerDescs = layers.map((l) => ({ mediaType: gzip ? OCI_LAYER_TAR_GZIP : OCI_LAYER_TAR, ...put(gzip ? gzipSync(l) : l) }));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/usr/bin/node', '/app/server.mjs'] },
    rootfs: { type: 'layers', diff_ids: opts.diffIds ?? layers.map((l) => sha256(l)) },
  };
  const configDesc = { mediaType: OCI_CONFIG_MEDIA_TYPE, ...put(Buffer.from(JSON.stringify(config))) };
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST_MEDIA_TYPE, config: configDesc, layers: layerDescs };
  const manifestDesc = { mediaType: OCI_MANIFEST_MEDIA_TYPE, ...put(Buffer.from(JSON.stringify(manifest))) };
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: [{ ...manifestDesc, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }),
  );
  return { dir, manifestDigest: manifestDesc.digest, layerDigests: layerDescs.map((d) => d.digest), blob: (d) => join(blobs, d.slice(7)) };
}
