/**
 * AI code as an OCI image layout: digests checked (manifest, config, layers, diff_ids), layers unpacked
 * in order with whiteouts, unsafe entries refused; and the sample AI code built into a layout here,
 * started by the supervisor under gVisor, and refused once a layer is tampered with.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObscuraError } from '../../shared/errors.ts';
import { directoryDigest } from '../../worker-os/image-digest.ts';
import { ociLayoutManifestDigests, unpackOciLayout } from '../../worker-os/oci-image.ts';
import { aiCodeGet, InProcessProxy, SAMPLE, SAMPLE_DIR, sampleEntry, sampleSupervisor, sampleWeights, logSink } from './helpers.ts';
import { directoryEntries, tar, writeOciLayout, type BuiltLayout } from './oci-build.ts';

let dir: string;
let n = 0;
const fresh = (name: string) => join(dir, `${name}-${n++}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-oci-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The sample AI code as a two-layer image: its files plus a junk file, then a whiteout of the junk. */
function sampleLayout(opts: { gzip?: boolean } = {}): BuiltLayout {
  const layer1 = tar([...directoryEntries(SAMPLE_DIR), { name: 'junk.txt', data: 'left behind by a build step' }, { name: 'cache', type: 'dir' }, { name: 'cache/blob', data: 'x' }]);
  const layer2 = tar([{ name: '.wh.junk.txt' }, { name: '.wh.cache' }]);
  return writeOciLayout(fresh('layout'), [layer1, layer2], opts);
}

async function refusal(p: Promise<unknown>): Promise<ObscuraError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ObscuraError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('unpacking an OCI image layout', () => {
  it('unpacks the layers in order, applying whiteouts: the result is the sample AI code, byte for byte', async () => {
    const layout = sampleLayout();
    expect(ociLayoutManifestDigests(layout.dir)).toEqual([layout.manifestDigest]);
    const target = fresh('unpacked');
    const image = await unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: target });
    expect(image).toMatchObject({ manifestDigest: layout.manifestDigest, layers: 2, rootDir: target });
    expect(existsSync(join(target, 'junk.txt'))).toBe(false);
    expect(existsSync(join(target, 'cache'))).toBe(false);
    expect(directoryDigest(target)).toBe(directoryDigest(SAMPLE_DIR));
    expect(statSync(join(target, 'server.mjs')).mode & 0o777).toBe(0o644);
    expect(existsSync(`${target}.staging`)).toBe(false);
  });

  it('handles uncompressed tar layers, PAX long names, symlinks, hard links and opaque whiteouts', async () => {
    const long = `deep/${'d'.repeat(60)}/${'n'.repeat(60)}.txt`;
    const layer1 = tar([
      { name: 'deep', type: 'dir' },
      { name: long, data: 'long name' },
      { name: 'lib', type: 'dir' },
      { name: 'lib/old.js', data: 'old' },
      { name: 'run.sh', data: '#!/bin/sh\n', mode: 0o4755 },
    ]);
    const layer2 = tar([
      { name: 'lib/.wh..wh..opq' },
      { name: 'lib/new.js', data: 'new' },
      { name: 'link-to-new', type: 'symlink', linkname: 'lib/new.js' },
      { name: 'copy-of-new', type: 'hardlink', linkname: 'lib/new.js' },
    ]);
    const layout = writeOciLayout(fresh('layout'), [layer1, layer2], { gzip: false });
    const target = fresh('unpacked');
    await unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: target });
    expect(readFileSync(join(target, long), 'utf8')).toBe('long name');
    expect(readdirSync(join(target, 'lib'))).toEqual(['new.js']); // the opaque whiteout hid old.js only
    expect(lstatSync(join(target, 'link-to-new')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(target, 'copy-of-new'), 'utf8')).toBe('new');
    expect(statSync(join(target, 'run.sh')).mode & 0o7777).toBe(0o755); // no setuid
  });

  it('refuses a layout without a manifest of the allowed digest (and says which it has)', async () => {
    const layout = sampleLayout();
    const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: `sha256:${'ab'.repeat(32)}`, targetDir: fresh('unpacked') }));
    expect(e.code).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    expect(e.message).toContain(layout.manifestDigest);
  });

  it('refuses a tampered layer, and leaves nothing unpacked', async () => {
    const layout = sampleLayout();
    const blob = layout.blob(layout.layerDigests[0]);
    const bytes = readFileSync(blob);
    bytes[bytes.length - 12] ^= 0x01; // inside the gzip trailer's CRC/size or data: either way, not its digest
    writeFileSync(blob, bytes);
    const target = fresh('unpacked');
    const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: target }));
    expect(['ERR_VALUE_MISMATCH', 'ERR_MALFORMED']).toContain(e.code);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.staging`)).toBe(false);
  });

  it('refuses a layer swapped for another valid one (its digest differs from the descriptor)', async () => {
    const layout = sampleLayout();
    const other = writeOciLayout(fresh('other'), [tar([{ name: 'server.mjs', data: 'process.exit(0)' }])]);
    writeFileSync(layout.blob(layout.layerDigests[1]), readFileSync(other.blob(other.layerDigests[0])));
    const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: fresh('unpacked') }));
    expect(e.code).toBe('ERR_VALUE_MISMATCH');
    expect(e.message).toContain(layout.layerDigests[1]);
  });

  it('refuses a tampered manifest blob', async () => {
    const layout = sampleLayout();
    const path = layout.blob(layout.manifestDigest);
    writeFileSync(path, readFileSync(path, 'utf8').replace('"schemaVersion":2', '"schemaVersion":2 '));
    const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: fresh('unpacked') }));
    expect(e.code).toBe('ERR_VALUE_MISMATCH');
  });

  it('refuses layers that do not match the config diff_ids', async () => {
    const layout = writeOciLayout(fresh('layout'), [tar([{ name: 'a', data: 'a' }])], { diffIds: [`sha256:${'00'.repeat(32)}`] });
    const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: fresh('unpacked') }));
    expect(e.code).toBe('ERR_VALUE_MISMATCH');
    expect(e.message).toContain('diff_id');
  });

  it('refuses entries that leave the image root, directly or through a symlink', async () => {
    const outside = fresh('outside');
    mkdirSync(outside);
    for (const entries of [
      [{ name: '../escaped', data: 'x' }],
      [{ name: 'a/../../escaped', data: 'x' }],
      [{ name: 'evil', type: 'symlink' as const, linkname: outside }, { name: 'evil/escaped', data: 'x' }],
      [{ name: 'evil', type: 'symlink' as const, linkname: outside }, { name: 'copy', type: 'hardlink' as const, linkname: 'evil/secret' }],
    ]) {
      writeFileSync(join(outside, 'secret'), 'host secret');
      const layout = writeOciLayout(fresh('layout'), [tar(entries)]);
      const e = await refusal(unpackOciLayout(layout.dir, { expectedDigest: layout.manifestDigest, targetDir: fresh('unpacked') }));
      expect(e.code).toBe('ERR_MALFORMED');
      expect(readdirSync(outside)).toEqual(['secret']);
      expect(existsSync(join(dir, 'escaped'))).toBe(false);
    }
  });
});

describe('the supervisor with an OCI image layout, under gVisor', () => {
  it('starts the sample AI code from the layout whose manifest digest the manifest allows; it serves the adapters', async () => {
    const layout = sampleLayout();
    const logs = logSink();
    const supervisor = sampleSupervisor({ stateDir: fresh('state'), log: logs.log, weights: sampleWeights(), ociLayout: layout.dir, entry: sampleEntry(layout.manifestDigest) });
    const proxy = new InProcessProxy(fresh('proxy'), () => supervisor.socketPath);
    mkdirSync(join(dir, `proxy-${n - 1}`), { recursive: true });
    try {
      await supervisor.start();
      expect(supervisor.info()).toMatchObject({ state: 'running', imageKind: 'oci-layout', imageDigest: layout.manifestDigest });
      expect((await aiCodeGet(supervisor.socketPath!, '/v1/models')).json.data[0].id).toBe(SAMPLE);
      await proxy.start();
      const x = await proxy.call('POST', `/v2/models/${SAMPLE}/generate`, { text_input: 'the sea', parameters: { max_tokens: 5 } });
      expect(JSON.parse(x.body).model_name).toBe(SAMPLE);
      expect(logs.events.some((e) => e.event === 'ai-code-image-unpacked' && e.layers === 2)).toBe(true);
    } finally {
      await proxy.stop();
      await supervisor.stop();
    }
  }, 60_000);

  it('refuses to start when a layer was tampered with, or the manifest allows another digest', async () => {
    const layout = sampleLayout();
    const blob = layout.blob(layout.layerDigests[1]);
    writeFileSync(blob, Buffer.concat([readFileSync(blob), Buffer.from([0])]));
    const tampered = sampleSupervisor({ stateDir: fresh('state'), log: () => {}, weights: sampleWeights(), ociLayout: layout.dir, entry: sampleEntry(layout.manifestDigest) });
    expect((await refusal(tampered.start())).code).toBe('ERR_VALUE_MISMATCH');
    expect(tampered.info()).toMatchObject({ state: 'refused', lastError: 'ERR_VALUE_MISMATCH' });
    expect(tampered.socketPath).toBeUndefined();

    const other = writeOciLayout(fresh('layout'), [tar(directoryEntries(SAMPLE_DIR)), tar([{ name: 'extra.txt', data: 'another build' }])]);
    expect(other.manifestDigest).not.toBe(layout.manifestDigest);
    const notAllowed = sampleSupervisor({ stateDir: fresh('state'), log: () => {}, weights: sampleWeights(), ociLayout: other.dir, entry: sampleEntry(layout.manifestDigest) });
    expect((await refusal(notAllowed.start())).code).toBe('ERR_MEASUREMENT_NOT_ALLOWED');
    expect(notAllowed.state).toBe('refused');
  }, 60_000);
});
