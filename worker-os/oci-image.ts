/**
 * AI code given as an OCI image layout directory (oci-layout, index.json, blobs/sha256/...): find the
 * image manifest whose digest the manifest allows, check every blob it names (manifest, config,
 * layers) against its sha256 digest and size, and unpack the layers in order into a directory, which
 * the sandbox then mounts read-only at /app.
 *
 * - The allowed image digest is the OCI manifest digest: index.json only says where to look; a layout
 *   that holds no manifest with that digest does not start (ERR_MEASUREMENT_NOT_ALLOWED).
 * - Bytes are hashed as they are read and unpacked from that same read, into a staging directory that
 *   replaces the target only once every digest matched (ERR_VALUE_MISMATCH otherwise): nothing read
 *   twice, nothing half-checked left behind. The config's rootfs.diff_ids, when present, are checked
 *   against the uncompressed layers too.
 * - Layers: tar, tar+gzip (OCI and Docker media types). Regular files, directories, symlinks (kept as
 *   they are: they resolve inside the sandbox), hard links (copied), PAX and GNU long names; devices and
 *   FIFOs are skipped. Whiteouts, minimally: `.wh.NAME` removes NAME and `.wh..wh..opq` empties its
 *   directory, of what lower layers put there (not what the same layer did). Names with `..`, and
 *   entries reached through a symlink, are refused. Modes are reduced to 0755/0644, owner root.
 * - The AI code image is an application image: its root is what the AI code sees at /app, and the
 *   runtime (/usr) comes read-only from the worker image; the command is the manifest's (measured),
 *   never the image config's.
 * Local use keeps plain directories (image-digest.ts directoryDigest).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ObscuraError } from '../shared/errors.ts';

export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const DOCKER_MANIFEST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LAYER_TAR_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

const LAYER_COMPRESSION: Record<string, 'gzip' | 'none'> = {
  [OCI_LAYER_TAR_GZIP]: 'gzip',
  [DOCKER_LAYER_TAR_GZIP]: 'gzip',
  [OCI_LAYER_TAR]: 'none',
};

const MAX_JSON_BLOB_BYTES = 4 * 1024 * 1024;
const MAX_META_ENTRY_BYTES = 1024 * 1024; // PAX headers, GNU long names
const DEFAULT_MAX_UNPACKED_BYTES = 16 * 1024 * 1024 * 1024;
const DEFAULT_MAX_ENTRIES = 1_000_000;
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';

export interface OciDescriptor {
  mediaType?: string;
  digest: string;
  size: number;
}

export interface UnpackedOciImage {
  manifestDigest: string;
  rootDir: string;
  layers: number;
  files: number;
  unpackedBytes: number;
}

export interface UnpackOptions {
  expectedDigest: string; // sha256:HEX, the manifest's imageDigest
  targetDir: string; // replaced by the unpacked image
  maxUnpackedBytes?: number;
  maxEntries?: number;
}

function malformed(message: string): ObscuraError {
  return new ObscuraError('ERR_MALFORMED', `OCI layout: ${message}`);
}

function parseDescriptor(value: unknown, where: string): OciDescriptor {
  const d = value as Record<string, unknown> | null;
  if (typeof d !== 'object' || d === null) throw malformed(`${where} is not a descriptor`);
  if (typeof d.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d.digest)) throw malformed(`${where}.digest must be sha256:<64 hex>`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw malformed(`${where}.size must be a byte count`);
  if (d.mediaType !== undefined && typeof d.mediaType !== 'string') throw malformed(`${where}.mediaType must be a string`);
  return { digest: d.digest, size: d.size, ...(typeof d.mediaType === 'string' ? { mediaType: d.mediaType } : {}) };
}

function blobPath(layoutDir: string, d: OciDescriptor): string {
  return join(layoutDir, 'blobs', 'sha256', d.digest.slice('sha256:'.length));
}

function checkDigest(d: OciDescriptor, size: number, hex: string, what: string): void {
  if (size !== d.size) throw new ObscuraError('ERR_VALUE_MISMATCH', `OCI layout: the ${what} blob ${d.digest} has ${size} bytes, but its descriptor says ${d.size}`);
  if (`sha256:${hex}` !== d.digest) throw new ObscuraError('ERR_VALUE_MISMATCH', `OCI layout: the ${what} blob does not match its digest ${d.digest} (it hashes to sha256:${hex})`);
}

/** A small JSON blob, read once, checked against its descriptor, parsed. */
function readJsonBlob(layoutDir: string, d: OciDescriptor, what: string): Record<string, unknown> {
  if (d.size > MAX_JSON_BLOB_BYTES) throw malformed(`the ${what} blob is larger than ${MAX_JSON_BLOB_BYTES} bytes`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(blobPath(layoutDir, d));
  } catch {
    throw malformed(`the ${what} blob ${d.digest} is missing`);
  }
  checkDigest(d, bytes.length, createHash('sha256').update(bytes).digest('hex'), what);
  return parseJson(bytes, what);
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw malformed(`${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** The descriptor of the image manifest with digest `expected`, following nested indexes (checked). */
function findManifest(layoutDir: string, index: Record<string, unknown>, expected: string, depth: number, seen: string[]): OciDescriptor | undefined {
  if (!Array.isArray(index.manifests)) throw malformed('an index has no manifests list');
  const descriptors = index.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`));
  for (const d of descriptors) {
    if (d.mediaType === OCI_INDEX_MEDIA_TYPE) continue;
    seen.push(d.digest);
    if (d.digest === expected) return d;
  }
  if (depth >= 2) return undefined;
  for (const d of descriptors) {
    if (d.mediaType !== OCI_INDEX_MEDIA_TYPE) continue;
    const found = findManifest(layoutDir, readJsonBlob(layoutDir, d, 'image index'), expected, depth + 1, seen);
    if (found) return found;
  }
  return undefined;
}

/** The image manifest digests an OCI layout's index names (what an owner puts in the manifest). */
export function ociLayoutManifestDigests(layoutDir: string): string[] {
  const index = readIndex(layoutDir);
  const seen: string[] = [];
  findManifest(layoutDir, index, '', 0, seen);
  return seen;
}

function readIndex(layoutDir: string): Record<string, unknown> {
  let layout: Record<string, unknown>;
  try {
    layout = parseJson(readFileSync(join(layoutDir, 'oci-layout')), 'oci-layout');
  } catch (e) {
    if (e instanceof ObscuraError) throw e;
    throw malformed(`${layoutDir} is not an OCI image layout (no oci-layout file)`);
  }
  if (typeof layout.imageLayoutVersion !== 'string' || !layout.imageLayoutVersion.startsWith('1.')) throw malformed('unsupported imageLayoutVersion');
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(layoutDir, 'index.json'));
  } catch {
    throw malformed('no index.json');
  }
  if (bytes.length > MAX_JSON_BLOB_BYTES) throw malformed('index.json is too large');
  return parseJson(bytes, 'index.json');
}

/**
 * Verify the image `opts.expectedDigest` of the layout at `layoutDir` and unpack it into
 * `opts.targetDir`. Throws (and leaves `targetDir` absent) unless every digest matches.
 */
export async function unpackOciLayout(layoutDir: string, opts: UnpackOptions): Promise<UnpackedOciImage> {
  if (!/^sha256:[0-9a-f]{64}$/.test(opts.expectedDigest)) throw malformed('the expected digest must be sha256:<64 hex>');
  const seen: string[] = [];
  const descriptor = findManifest(layoutDir, readIndex(layoutDir), opts.expectedDigest, 0, seen);
  if (!descriptor) {
    throw new ObscuraError(
      'ERR_MEASUREMENT_NOT_ALLOWED',
      `the OCI layout holds no image manifest with the digest the manifest allows (${opts.expectedDigest}); it has ${seen.join(', ') || 'none'}`,
    );
  }
  const manifest = readJsonBlob(layoutDir, descriptor, 'image manifest');
  if (manifest.schemaVersion !== 2) throw malformed('the image manifest is not schemaVersion 2');
  if (manifest.mediaType !== undefined && manifest.mediaType !== OCI_MANIFEST_MEDIA_TYPE && manifest.mediaType !== DOCKER_MANIFEST_MEDIA_TYPE) {
    throw malformed(`the image manifest has mediaType ${String(manifest.mediaType)}`);
  }
  const config = readJsonBlob(layoutDir, parseDescriptor(manifest.config, 'config'), 'config');
  if (!Array.isArray(manifest.layers)) throw malformed('the image manifest has no layers list');
  const layers = manifest.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`));
  const rootfs = config.rootfs as { diff_ids?: unknown } | undefined;
  const diffIds = Array.isArray(rootfs?.diff_ids) ? (rootfs.diff_ids as unknown[]) : undefined;
  if (diffIds && diffIds.length !== layers.length) throw malformed(`the config names ${diffIds.length} diff_ids for ${layers.length} layers`);

  const staging = `${opts.targetDir}.staging`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true, mode: 0o755 });
  const limits = { bytesLeft: opts.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES, entriesLeft: opts.maxEntries ?? DEFAULT_MAX_ENTRIES };
  let files = 0;
  try {
    for (const [i, layer] of layers.entries()) {
      const compression = LAYER_COMPRESSION[layer.mediaType ?? ''];
      if (!compression) throw malformed(`layers[${i}] has the unsupported mediaType ${layer.mediaType ?? '(none)'}`);
      const path = blobPath(layoutDir, layer);
      if (!existsSync(path)) throw malformed(`the layer blob ${layer.digest} is missing`);
      const result = await extractLayer(path, compression, new LayerWriter(staging, limits));
      checkDigest(layer, result.size, result.digestHex, `layers[${i}]`);
      if (diffIds && diffIds[i] !== `sha256:${result.diffIdHex}`) {
        throw new ObscuraError('ERR_VALUE_MISMATCH', `OCI layout: layers[${i}] does not match the config's diff_id ${String(diffIds[i])}`);
      }
      files += result.files;
    }
    rmSync(opts.targetDir, { recursive: true, force: true });
    mkdirSync(dirname(opts.targetDir), { recursive: true });
    renameSync(staging, opts.targetDir);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return {
    manifestDigest: descriptor.digest,
    rootDir: opts.targetDir,
    layers: layers.length,
    files,
    unpackedBytes: (opts.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES) - limits.bytesLeft,
  };
}

async function extractLayer(path: string, compression: 'gzip' | 'none', writer: LayerWriter): Promise<{ size: number; digestHex: string; diffIdHex: string; files: number }> {
  const blobHash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      blobHash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const streams: (Readable | Transform)[] = [createReadStream(path), tap];
  if (compression === 'gzip') streams.push(createGunzip());
  let failure: Error | undefined;
  const out = (pipeline as unknown as (...args: unknown[]) => Readable)(...streams, (err: Error | null) => {
    if (err) failure = err;
  });
  const diffHash: Hash = createHash('sha256');
  const tar = new TarReader(writer);
  try {
    for await (const chunk of out) {
      diffHash.update(chunk as Buffer);
      tar.push(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof ObscuraError) throw e;
    throw malformed(`a layer could not be read (${(failure ?? (e as Error)).message})`);
  } finally {
    out.destroy();
    writer.end();
  }
  tar.end();
  return { size, digestHex: blobHash.digest('hex'), diffIdHex: diffHash.digest('hex'), files: writer.files };
}

// ---- tar ----

interface TarHeader {
  name: string;
  mode: number;
  size: number;
  type: string;
  linkname: string;
}

function tarString(block: Buffer, offset: number, length: number): string {
  const end = block.indexOf(0, offset);
  return block.toString('utf8', offset, end >= 0 && end < offset + length ? end : offset + length);
}

function tarNumber(block: Buffer, offset: number, length: number): number {
  if (block[offset] & 0x80) {
    // base-256 (GNU): big-endian, first byte's high bit set
    let v = block[offset] & 0x7f;
    for (let i = 1; i < length; i++) v = v * 256 + block[offset + i];
    if (!Number.isSafeInteger(v)) throw malformed('a tar size is out of range');
    return v;
  }
  const text = tarString(block, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw malformed('a tar header has a non-octal number');
  return parseInt(text, 8);
}

function parseTarHeader(block: Buffer): TarHeader {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i];
  if (sum !== tarNumber(block, 148, 8)) throw malformed('a tar header checksum does not match');
  const magic = block.toString('latin1', 257, 262);
  const prefix = magic === 'ustar' ? tarString(block, 345, 155) : '';
  const name = tarString(block, 0, 100);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    mode: tarNumber(block, 100, 8),
    size: tarNumber(block, 124, 12),
    type: String.fromCharCode(block[156] || 0x30),
    linkname: tarString(block, 157, 100),
  };
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = parseInt(data.toString('latin1', i, space), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || i + len > data.length) throw malformed('a PAX header record is malformed');
    const record = data.toString('utf8', space + 1, i + len - 1); // without the trailing newline
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

/** A streaming tar reader: headers, then each entry's data handed to the writer chunk by chunk. */
class TarReader {
  private pending: Buffer = Buffer.alloc(0);
  private entry?: { header: TarHeader; remaining: number; padding: number; meta?: Buffer[] };
  private overrides: { path?: string; linkpath?: string; size?: number } = {};
  private finished = false;

  constructor(private readonly writer: LayerWriter) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.finished) {
        this.pending = Buffer.alloc(0); // after the end-of-archive blocks: padding only
        return;
      }
      if (this.entry) {
        const e = this.entry;
        if (e.remaining > 0) {
          if (this.pending.length === 0) return;
          const take = Math.min(e.remaining, this.pending.length);
          const data = this.pending.subarray(0, take);
          if (e.meta) e.meta.push(Buffer.from(data));
          else this.writer.data(data);
          e.remaining -= take;
          this.pending = this.pending.subarray(take);
          if (e.remaining > 0) return;
        }
        if (this.pending.length < e.padding) {
          e.padding -= this.pending.length;
          this.pending = Buffer.alloc(0);
          return;
        }
        this.pending = this.pending.subarray(e.padding);
        this.entry = undefined;
        this.finishEntry(e);
        continue;
      }
      if (this.pending.length < 512) return;
      const block = this.pending.subarray(0, 512);
      this.pending = this.pending.subarray(512);
      if (block.every((b) => b === 0)) {
        this.finished = true;
        continue;
      }
      this.startEntry(parseTarHeader(block));
    }
  }

  private startEntry(h: TarHeader): void {
    const isMeta = h.type === 'x' || h.type === 'g' || h.type === 'L' || h.type === 'K';
    if (isMeta && h.size > MAX_META_ENTRY_BYTES) throw malformed('a tar metadata entry is too large');
    if (!isMeta) {
      if (this.overrides.path !== undefined) h.name = this.overrides.path;
      if (this.overrides.linkpath !== undefined) h.linkname = this.overrides.linkpath;
      if (this.overrides.size !== undefined) h.size = this.overrides.size;
      this.overrides = {};
    }
    const hasData = h.type === '0' || h.type === '7' || isMeta;
    const size = hasData ? h.size : 0;
    this.entry = { header: h, remaining: size, padding: (512 - (size % 512)) % 512, ...(isMeta ? { meta: [] } : {}) };
    if (!isMeta) this.writer.begin(h);
  }

  private finishEntry(e: { header: TarHeader; meta?: Buffer[] }): void {
    if (!e.meta) {
      this.writer.end();
      return;
    }
    const data = Buffer.concat(e.meta);
    if (e.header.type === 'x') {
      const pax = parsePax(data);
      if (pax.path !== undefined) this.overrides.path = pax.path;
      if (pax.linkpath !== undefined) this.overrides.linkpath = pax.linkpath;
      if (pax.size !== undefined) {
        const n = Number(pax.size);
        if (!Number.isSafeInteger(n) || n < 0) throw malformed('a PAX size is malformed');
        this.overrides.size = n;
      }
    } else if (e.header.type === 'L') this.overrides.path = data.toString('utf8').replace(/\0.*$/s, '');
    else if (e.header.type === 'K') this.overrides.linkpath = data.toString('utf8').replace(/\0.*$/s, '');
    // 'g' (global PAX) carries nothing this unpacker uses
  }

  end(): void {
    if (this.entry) throw malformed('a layer ends inside a tar entry');
  }
}

/** Applies one layer's entries to the image directory, safely. */
class LayerWriter {
  files = 0;
  private fd?: number;
  private readonly createdHere = new Set<string>(); // paths this layer created: its whiteouts spare them

  constructor(
    private readonly root: string,
    private readonly limits: { bytesLeft: number; entriesLeft: number },
  ) {}

  /** Normalised relative path parts; refuses `..` and anything outside the root. */
  private parts(name: string): string[] {
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.some((p) => p === '..')) throw malformed(`a layer entry leaves the image root (${name.slice(0, 200)})`);
    return parts;
  }

  /** Make sure every parent of `parts` is a real directory (never a symlink), creating it if missing. */
  private parentDir(parts: string[]): string {
    let dir = this.root;
    for (const p of parts.slice(0, -1)) {
      dir = join(dir, p);
      const st = lstatSync(dir, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) throw malformed(`a layer entry goes through a symlink (${parts.join('/').slice(0, 200)})`);
      if (st && !st.isDirectory()) rmSync(dir, { force: true });
      if (!st || !st.isDirectory()) mkdirSync(dir, { mode: 0o755 });
    }
    return dir;
  }

  begin(h: TarHeader): void {
    if (--this.limits.entriesLeft < 0) throw malformed('the image has too many entries');
    const parts = this.parts(h.name);
    if (parts.length === 0) return; // the root itself
    const base = parts[parts.length - 1];
    const parent = this.parentDir(parts);
    const rel = parts.join('/');
    const target = join(parent, base);

    if (base === OPAQUE_WHITEOUT) {
      const dirRel = parts.slice(0, -1).join('/');
      for (const child of readdirSync(parent)) {
        const childRel = dirRel ? `${dirRel}/${child}` : child;
        if (!this.createdHere.has(childRel)) rmSync(join(parent, child), { recursive: true, force: true });
      }
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      const hiddenRel = [...parts.slice(0, -1), hidden].join('/');
      if (hidden && hidden !== '.' && hidden !== '..' && !this.createdHere.has(hiddenRel)) rmSync(join(parent, hidden), { recursive: true, force: true });
      return;
    }

    const existing = lstatSync(target, { throwIfNoEntry: false });
    this.createdHere.add(rel);
    switch (h.type) {
      case '5':
        if (existing && !existing.isDirectory()) rmSync(target, { recursive: true, force: true });
        if (!existing || !existing.isDirectory()) mkdirSync(target, { mode: 0o755 });
        return;
      case '0':
      case '7':
        if (existing) rmSync(target, { recursive: true, force: true });
        if ((this.limits.bytesLeft -= h.size) < 0) throw malformed('the image unpacks to more than the allowed size');
        this.fd = openSync(target, 'wx', h.mode & 0o111 ? 0o755 : 0o644);
        this.files++;
        return;
      case '2':
        if (existing) rmSync(target, { recursive: true, force: true });
        symlinkSync(h.linkname, target);
        return;
      case '1': {
        const from = join(this.root, ...this.parts(h.linkname));
        const st = lstatSync(from, { throwIfNoEntry: false });
        if (!st?.isFile()) throw malformed(`a hard link points at no regular file (${h.linkname.slice(0, 200)})`);
        this.parentDir(this.parts(h.linkname)); // refuses a target reached through a symlink
        if (existing) rmSync(target, { recursive: true, force: true });
        if ((this.limits.bytesLeft -= st.size) < 0) throw malformed('the image unpacks to more than the allowed size');
        copyFileSync(from, target);
        this.files++;
        return;
      }
      default:
        this.createdHere.delete(rel); // devices, FIFOs: nothing an AI code image needs
    }
  }

  data(chunk: Buffer): void {
    if (this.fd === undefined) return;
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
  }

  end(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Whether `path` is an OCI image layout directory (has an oci-layout file). */
export function isOciLayout(path: string): boolean {
  try {
    return statSync(join(path, 'oci-layout')).isFile();
  } catch {
    return false;
  }
}
