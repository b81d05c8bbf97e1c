/**
 * What the three `obscura verify-evidence` platforms share: reading the files named on the command
 * line, naming the step a failure came from (parse / verify / validate), and turning verified facts
 * into plain JSON (bytes as lowercase hex, 64-bit values as 0x-hex strings, dates as ISO 8601).
 */
import { readFile } from 'node:fs/promises';
import { ObscuraError } from '../../../../shared/errors.ts';
import { fromUtf8, toHex } from '../../../../shared/bytes.ts';
import { type ParsedCertificate, parseCertificate, parseCertificates } from '../../../../shared/attestation/x509/index.ts';

export { type CommonOptions, type Step, StepFailure, type VerifyOutcome, step } from './step.ts';

/** The file's bytes; an unreadable file is malformed input (exit 2). */
export async function readBytes(flag: string, path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? String(cause);
    throw new ObscuraError('ERR_MALFORMED', `cannot read ${flag} ${path}: ${reason}`, { cause });
  }
}

/** The file as UTF-8 text. */
export async function readText(flag: string, path: string): Promise<string> {
  const bytes = await readBytes(flag, path);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${flag} ${path} is not UTF-8 text`, { cause });
  }
}

const PEM_BEGIN = /-----BEGIN /;

function looksLikePem(bytes: Uint8Array): boolean {
  // PEM is ASCII; a DER certificate starts with 0x30. Only look at a prefix.
  return bytes[0] !== 0x30 && PEM_BEGIN.test(new TextDecoder('latin1').decode(bytes.subarray(0, 4096)));
}

/** Every certificate in a PEM file (any number of blocks) or a single DER certificate. */
export async function readCertificates(flag: string, path: string): Promise<ParsedCertificate[]> {
  const bytes = await readBytes(flag, path);
  try {
    if (looksLikePem(bytes)) return parseCertificates(fromUtf8(bytes));
    return [parseCertificate(bytes)];
  } catch (e) {
    if (e instanceof ObscuraError) throw new ObscuraError(e.code, `${flag} ${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The --policy file as JSON. Unreadable or not JSON: ERR_MALFORMED (exit 2). What the JSON means is
 * checked by each platform's policy parser (a policy that cannot mean what it says: ERR_USAGE, exit 1).
 */
export async function readPolicyJson(path: string): Promise<unknown> {
  const text = await readText('--policy', path);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `--policy ${path} is not JSON: ${(cause as Error).message}`, { cause });
  }
}

/** Refuse keys a policy schema does not know, so a typo never silently skips a check. */
export function rejectUnknownKeys(value: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new ObscuraError('ERR_USAGE', `${where}: unknown field "${key}" (known: ${known.join(', ')})`);
  }
}

export function asPolicyObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ObscuraError('ERR_USAGE', `${where} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Plain JSON for a verified value: Uint8Array as lowercase hex, bigint as "0x…" lowercase hex, Date
 * as ISO 8601; keys named in `omit` (at any depth) are left out.
 */
export function toJson(value: unknown, omit: ReadonlySet<string> = new Set()): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (typeof value === 'bigint') return `0x${value.toString(16)}`;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => toJson(v, omit));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (omit.has(k) || v === undefined || typeof v === 'function') continue;
      out[k] = toJson(v, omit);
    }
    return out;
  }
  return value;
}

/** First `n` hex digits and an ellipsis, for summaries. */
export function short(hex: string, n = 16): string {
  return hex.length <= n ? hex : `${hex.slice(0, n)}…`;
}
