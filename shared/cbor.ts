/**
 * CBOR in one place: deterministic encoding (RFC 8949 §4.2.1 core deterministic) for everything that is
 * hashed or authenticated, strict decoding that turns every failure into ERR_MALFORMED.
 */
import { decode, encode } from 'cbor2';
import { ObscuraError } from './errors.ts';

export function encodeDeterministic(value: unknown): Uint8Array {
  return encode(value, { cde: true });
}

/** Decode exactly one CBOR item; trailing bytes, duplicate keys and indefinite lengths are refused. */
export function decodeStrict<T = unknown>(bytes: Uint8Array, what: string): T {
  try {
    return decode(bytes, { rejectDuplicateKeys: true, rejectStreaming: true, preferMap: false }) as T;
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${what} is not valid CBOR`, { cause });
  }
}

/** Narrowing helpers for decoded CBOR maps: each names the field that is wrong. */
export function fieldBytes(obj: Record<string, unknown>, key: string, what: string, length?: number): Uint8Array {
  const v = obj[key];
  if (!(v instanceof Uint8Array) || (length !== undefined && v.length !== length)) {
    throw new ObscuraError('ERR_MALFORMED', `${what}.${key} must be a byte string${length ? ` of ${length} bytes` : ''}`);
  }
  return v;
}

export function fieldString(obj: Record<string, unknown>, key: string, what: string): string {
  const v = obj[key];
  if (typeof v !== 'string') throw new ObscuraError('ERR_MALFORMED', `${what}.${key} must be a text string`);
  return v;
}

export function fieldInt(obj: Record<string, unknown>, key: string, what: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new ObscuraError('ERR_MALFORMED', `${what}.${key} must be an integer`);
  }
  return v;
}

export function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array || value instanceof Map) {
    throw new ObscuraError('ERR_MALFORMED', `${what} must be a CBOR map with text keys`);
  }
  return value as Record<string, unknown>;
}
