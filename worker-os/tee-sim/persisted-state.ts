/**
 * A simulated machine's persisted JSON state (its certificate chains and keys): created once, atomically
 * (whoever links first wins, so concurrent parts agree on one machine), read back on every start, and
 * never silently replaced when damaged, since manifests and policies pin the roots it holds.
 */
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';

export interface PersistedStateKind<T> {
  /** What the file is, for errors: e.g. "a simulated SEV-SNP chain (format 1)". */
  what: string;
  isValid(value: unknown): value is T;
}

/** The state at `path`, or undefined when there is none; a damaged file is ERR_MALFORMED. */
export async function readPersistedState<T>(path: string, kind: PersistedStateKind<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${path} is not valid JSON`, { cause });
  }
  if (!kind.isValid(state)) throw new ObscuraError('ERR_MALFORMED', `${path} is not ${kind.what}`);
  return state;
}

/** Read the state at `path`, or generate one and create the file (0600; its directory 0700). */
export async function loadOrCreatePersistedState<T>(path: string, kind: PersistedStateKind<T>, generate: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const existing = await readPersistedState(path, kind);
  if (existing) return existing;
  const state = await generate();
  const tmp = `${path}.${process.pid}.${toHex(randomBytes(6))}.tmp`;
  await writeFile(tmp, JSON.stringify(state), { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  try {
    await link(tmp, path); // atomic create-if-absent
    return state;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const winner = await readPersistedState(path, kind);
    if (!winner) throw error;
    return winner;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Replace `path` atomically (0600). */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${toHex(randomBytes(6))}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
