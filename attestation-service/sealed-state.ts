/**
 * The service's state file, sealed to the TEE: AES-256-GCM under a key the TEE derives from its
 * platform secret and the service's launch measurement (TeeProvider.sealingKey), so only this service
 * image on this machine can open it. Written atomically (temporary file, fsync, rename, fsync of the
 * directory): a crash leaves the old file or the new one, never a mix. A file that does not open is an
 * error with a reason, never silently replaced: losing the manifest chain would show clients a fork.
 *
 * Layout: "OBSCURA-AS-STATE" | format (1) | key id (16) | measurement (48) | iv (12) | length (4, BE) |
 * ciphertext. Everything before the ciphertext is the associated data.
 */
import { open, readFile, rename, unlink, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { bufferOf, concatBytes, equalBytes, randomBytes, toHex, utf8 } from '../shared/bytes.ts';
import { ObscuraError, type ErrorCode } from '../shared/errors.ts';

export const STATE_FILE = 'state.sealed';
export const LOCK_FILE = 'lock';
export const SEALING_PURPOSE = 'obscura/v1 attestation service state';

const MAGIC = utf8('OBSCURA-AS-STATE');
const FORMAT = 1;
const KEY_ID_BYTES = 16;
const MEASUREMENT_BYTES = 48;
const IV_BYTES = 12;
const HEADER_BYTES = MAGIC.length + 1 + KEY_ID_BYTES + MEASUREMENT_BYTES + IV_BYTES + 4;
const TAG_BYTES = 16;

export type SealedStateProblem =
  | 'truncated' // shorter than its header or its stated length
  | 'corrupt' // not this format, or the ciphertext does not authenticate under the right key
  | 'other-measurement' // sealed by another service image: its key differs
  | 'other-machine' // sealed by this image on another (simulated) machine
  | 'locked'; // another live service process holds the directory

const PROBLEM_CODES: Record<SealedStateProblem, ErrorCode> = {
  truncated: 'ERR_MALFORMED',
  corrupt: 'ERR_MALFORMED',
  'other-measurement': 'ERR_VALUE_MISMATCH',
  'other-machine': 'ERR_VALUE_MISMATCH',
  locked: 'ERR_USAGE',
};

/** The service refuses to start on this: the state is kept as it is for the operator to decide. */
export class SealedStateError extends ObscuraError {
  constructor(
    readonly problem: SealedStateProblem,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(PROBLEM_CODES[problem], message, options);
  }
}

async function deriveKeys(sealingKey: Uint8Array): Promise<{ key: CryptoKey; keyId: Uint8Array }> {
  const root = await crypto.subtle.importKey('raw', bufferOf(sealingKey), 'HKDF', false, ['deriveBits', 'deriveKey']);
  const salt = new ArrayBuffer(0);
  const key = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt, info: bufferOf(utf8('obscura/v1 as state encryption')) },
    root,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
  const keyId = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: bufferOf(utf8('obscura/v1 as state key id')) }, root, KEY_ID_BYTES * 8));
  return { key, keyId };
}

export class SealedStateFile {
  readonly path: string;

  private constructor(
    readonly dir: string,
    private readonly key: CryptoKey,
    private readonly keyId: Uint8Array,
    private readonly measurement: Uint8Array,
  ) {
    this.path = join(dir, STATE_FILE);
  }

  /** `sealingKey` comes from the TEE (32 bytes); `measurement` is the service's own (48 bytes). */
  static async create(dir: string, sealingKey: Uint8Array, measurement: Uint8Array): Promise<SealedStateFile> {
    if (measurement.length !== MEASUREMENT_BYTES) throw new ObscuraError('ERR_USAGE', 'a launch measurement is 48 bytes');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { key, keyId } = await deriveKeys(sealingKey);
    return new SealedStateFile(dir, key, keyId, measurement);
  }

  /** The sealed plaintext, or undefined when there is no state yet (a fresh service). */
  async read(): Promise<Uint8Array | undefined> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return this.open(bytes);
  }

  async open(bytes: Uint8Array): Promise<Uint8Array> {
    const fail = (problem: SealedStateProblem, message: string, cause?: unknown) => new SealedStateError(problem, this.path, message, { cause });
    if (bytes.length < MAGIC.length || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) {
      if (bytes.length < MAGIC.length && equalBytes(bytes, MAGIC.subarray(0, bytes.length))) throw fail('truncated', `${this.path} is truncated (${bytes.length} bytes)`);
      throw fail('corrupt', `${this.path} is not a sealed attestation service state`);
    }
    if (bytes.length < HEADER_BYTES) throw fail('truncated', `${this.path} is truncated (${bytes.length} bytes, its header alone is ${HEADER_BYTES})`);
    let at = MAGIC.length;
    const format = bytes[at++];
    if (format !== FORMAT) throw fail('corrupt', `${this.path} has state format ${format}; this service reads format ${FORMAT}`);
    const keyId = bytes.subarray(at, (at += KEY_ID_BYTES));
    const measurement = bytes.subarray(at, (at += MEASUREMENT_BYTES));
    const iv = bytes.subarray(at, (at += IV_BYTES));
    const length = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0);
    at += 4;
    const ct = bytes.subarray(at);
    if (ct.length < length) throw fail('truncated', `${this.path} is truncated (${ct.length} of ${length} sealed bytes)`);
    if (ct.length > length || length < TAG_BYTES) throw fail('corrupt', `${this.path} has ${ct.length} sealed bytes where its header says ${length}`);
    if (!equalBytes(keyId, this.keyId)) {
      if (!equalBytes(measurement, this.measurement)) {
        throw fail(
          'other-measurement',
          `${this.path} was sealed by an attestation service with measurement ${toHex(measurement).slice(0, 16)}…, not this one (${toHex(this.measurement).slice(0, 16)}…): ` +
            'only the image that sealed it can open it (the service code changed)',
        );
      }
      throw fail('other-machine', `${this.path} was sealed by this attestation service image on another machine (another TEE sealing root)`);
    }
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bufferOf(iv), additionalData: bufferOf(bytes.subarray(0, HEADER_BYTES)) }, this.key, bufferOf(ct)));
    } catch (cause) {
      throw fail('corrupt', `${this.path} does not authenticate: it was changed or damaged after it was sealed`, cause);
    }
  }

  async seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const iv = randomBytes(IV_BYTES);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, plaintext.length + TAG_BYTES);
    const header = concatBytes(MAGIC, new Uint8Array([FORMAT]), this.keyId, this.measurement, iv, length);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: bufferOf(iv), additionalData: bufferOf(header) }, this.key, bufferOf(plaintext)));
    return concatBytes(header, ct);
  }

  /** Seal and replace the state file atomically and durably. */
  async write(plaintext: Uint8Array): Promise<void> {
    const bytes = await this.seal(plaintext);
    const tmp = join(this.dir, `.${STATE_FILE}.${process.pid}.${toHex(randomBytes(6))}.tmp`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    try {
      await rename(tmp, this.path);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  /** One live service per state directory: a second one would overwrite the first's state. */
  async lock(): Promise<() => Promise<void>> {
    const path = join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        await chmod(path, 0o600);
        return async () => void (await unlink(path).catch(() => undefined));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new SealedStateError('locked', path, `another attestation service (pid ${pid}) is using ${this.dir}`);
      }
      await unlink(path).catch(() => undefined); // left by a process that is gone
    }
    throw new SealedStateError('locked', path, `could not lock ${this.dir}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
