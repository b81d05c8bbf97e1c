/**
 * The sealed state file: a round trip under the TEE's key, and every way it can fail to open giving a
 * typed reason, with the file left exactly as it was.
 */
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../shared/bytes.ts';
import { deriveSimulatedSealingKey } from '../worker-os/tee-sim/sealing.ts';
import { SealedStateError, SealedStateFile, STATE_FILE } from './sealed-state.ts';

let dir: string;
const machine = randomBytes(32);
const measurement = randomBytes(48);
const keyFor = (m: Uint8Array, mach = machine) => deriveSimulatedSealingKey(mach, m, 'test');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-sealed-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function problemOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (!(e instanceof SealedStateError)) throw e;
    return e.problem;
  }
}

describe('sealed state file', () => {
  it('round-trips, atomically (no temporary file is left), and has no plaintext in it', async () => {
    const d = join(dir, 'rt');
    const file = await SealedStateFile.create(d, await keyFor(measurement), measurement);
    expect(await file.read()).toBeUndefined();
    const secret = randomBytes(64);
    await file.write(secret);
    await file.write(secret); // replaces
    expect(toHex((await file.read())!)).toBe(toHex(secret));
    expect(await readdir(d)).toEqual([STATE_FILE]);
    expect((await readFile(join(d, STATE_FILE))).includes(Buffer.from(secret.subarray(0, 16)))).toBe(false);
    // Reopened with the same key (the same image on the same machine, after a restart).
    const again = await SealedStateFile.create(d, await keyFor(measurement), measurement);
    expect(toHex((await again.read())!)).toBe(toHex(secret));
  });

  it('refuses a flipped byte, a truncated file, garbage and an empty file, leaving each as it was', async () => {
    const d = join(dir, 'bad');
    const file = await SealedStateFile.create(d, await keyFor(measurement), measurement);
    await file.write(randomBytes(200));
    const good = await readFile(file.path);
    const cases: [string, Buffer][] = [
      ['corrupt', Buffer.from(good.map((b, i) => (i === good.length - 5 ? b ^ 1 : b)))],
      ['truncated', good.subarray(0, good.length - 10)],
      ['truncated', good.subarray(0, 40)],
      ['truncated', good.subarray(0, 0)],
      ['corrupt', Buffer.from('{"not":"a sealed state"}')],
    ];
    for (const [problem, bytes] of cases) {
      await writeFile(file.path, bytes);
      expect(await problemOf(file.read())).toBe(problem);
      expect((await readFile(file.path)).equals(bytes)).toBe(true);
    }
  });

  it('says when the state was sealed by another image (measurement) or on another machine', async () => {
    const d = join(dir, 'other');
    const file = await SealedStateFile.create(d, await keyFor(measurement), measurement);
    await file.write(randomBytes(100));
    const otherMeasurement = randomBytes(48);
    const otherImage = await SealedStateFile.create(d, await keyFor(otherMeasurement), otherMeasurement);
    const e = await otherImage.read().catch((x) => x);
    expect(e).toBeInstanceOf(SealedStateError);
    expect(e.problem).toBe('other-measurement');
    expect(e.code).toBe('ERR_VALUE_MISMATCH');
    expect(e.message).toMatch(/measurement/);
    const otherMachine = await SealedStateFile.create(d, await keyFor(measurement, randomBytes(32)), measurement);
    expect(await problemOf(otherMachine.read())).toBe('other-machine');
  });

  it('lets one live process at a time use a directory', async () => {
    const d = join(dir, 'lock');
    const file = await SealedStateFile.create(d, await keyFor(measurement), measurement);
    await writeFile(join(d, 'lock'), String(process.ppid)); // a live process that is not this one
    expect(await problemOf(file.lock())).toBe('locked');
    await writeFile(join(d, 'lock'), '999999999'); // gone
    const unlock = await file.lock();
    await unlock();
  });
});
