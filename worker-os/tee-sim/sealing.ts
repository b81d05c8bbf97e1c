/**
 * The simulated TEE's sealing keys, shaped like SEV-SNP's MSG_KEY_REQ derived keys: a per-machine
 * secret (the simulator's stand-in for the chip's VCEK-derived root, a 0600 file created once per
 * simulated machine) mixed with the guest's launch measurement and a purpose. The same image on the
 * same machine gets the same key after a restart; another image (another measurement), or the same
 * image on another machine, gets another key, so it cannot open what this one sealed.
 */
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bufferOf, concatBytes, randomBytes, toHex, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';

export const SIM_SEALING_SECRET_FILE = 'sealing-root.key';
const SECRET_BYTES = 32;
const DERIVED_KEY_BYTES = 32;
const LABEL = 'obscura/v1 simulated snp derived key';

/** The machine's sealing root, created on first use (atomically, so concurrent parts agree on one). */
export async function loadOrCreateMachineSecret(dir: string): Promise<Uint8Array> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, SIM_SEALING_SECRET_FILE);
  const existing = await readSecret(path);
  if (existing) return existing;
  const tmp = `${path}.${process.pid}.${toHex(randomBytes(6))}.tmp`;
  await writeFile(tmp, randomBytes(SECRET_BYTES), { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  try {
    await link(tmp, path); // create-if-absent: whoever links first wins
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  const secret = await readSecret(path);
  if (!secret) throw new ObscuraError('ERR_UPSTREAM', `${path} could not be created`);
  return secret;
}

async function readSecret(path: string): Promise<Uint8Array | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (bytes.length !== SECRET_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', `${path} is not a simulated sealing root (${SECRET_BYTES} bytes); it was left as it is`);
  }
  return new Uint8Array(bytes);
}

/** HKDF-SHA256(machine secret; salt = measurement; info = label || purpose): 32 bytes. */
export async function deriveSimulatedSealingKey(machineSecret: Uint8Array, measurement: Uint8Array, purpose: string): Promise<Uint8Array> {
  const ikm = await crypto.subtle.importKey('raw', bufferOf(machineSecret), 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: bufferOf(measurement), info: bufferOf(concatBytes(utf8(LABEL), new Uint8Array([0]), utf8(purpose))) },
    ikm,
    DERIVED_KEY_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** TeeProvider.sealingKey for a guest with `measurement` on the simulated machine in `hardwareDir`. */
export function simulatedSealingKeys(hardwareDir: string, measurement: Uint8Array): (purpose: string) => Promise<Uint8Array> {
  return async (purpose) => {
    const root = await loadOrCreateMachineSecret(hardwareDir);
    try {
      return await deriveSimulatedSealingKey(root, measurement, purpose);
    } finally {
      root.fill(0);
    }
  };
}
