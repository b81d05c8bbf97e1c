/**
 * CBOR in one place: deterministic encoding (RFC 8949 §4.2.1 core deterministic) for everything that is
 * hashed or authenticated, strict decoding that turns every failure into ERR_MALFORMED.
 */
import { decode, encode } from 'cbor2';
import { ObscuraError } from './errors.ts';

export function encodeDeterministic(value: unknown): Uint8Array {
  return encodeCoreSubset(value) ?? encode(value, { cde: true });
}

/**
 * The same bytes as cbor2's `{ cde: true }` for the values the protocol hashes and authenticates on
 * every request (plain objects with text keys, arrays, text, byte strings, safe integers, booleans,
 * null), about 30 times faster: cbor2 encodes each map entry through its own 4 KiB writer to sort the
 * keys, ~150 µs and much garbage per sealed-request header. Anything else (floats, -0, undefined,
 * bigints, Buffers, Maps, class instances, sparse arrays, ...) returns undefined and goes to cbor2;
 * cbor.test.ts checks both agree on many random values.
 */
export function encodeCoreSubset(value: unknown): Uint8Array | undefined {
  const w: SubsetWriter = { buf: new Uint8Array(256), len: 0 };
  return writeSubset(w, value) ? w.buf.slice(0, w.len) : undefined;
}

interface SubsetWriter {
  buf: Uint8Array;
  len: number;
}

const MT_UINT = 0;
const MT_NEGINT = 1;
const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const SIMPLE_FALSE = 0xf4;
const SIMPLE_TRUE = 0xf5;
const SIMPLE_NULL = 0xf6;
const textEncoder = new TextEncoder();

function reserve(w: SubsetWriter, n: number): void {
  if (w.len + n <= w.buf.length) return;
  const grown = new Uint8Array(Math.max(w.buf.length * 2, w.len + n));
  grown.set(w.buf.subarray(0, w.len));
  w.buf = grown;
}

/** A major type with its argument in the shortest form (RFC 8949 §4.2.1). `n` is a safe integer ≥ 0. */
function writeHead(w: SubsetWriter, major: number, n: number): void {
  reserve(w, 9);
  const b = w.buf;
  const mt = major << 5;
  if (n < 24) b[w.len++] = mt | n;
  else if (n < 0x100) {
    b[w.len++] = mt | 24;
    b[w.len++] = n;
  } else if (n < 0x10000) {
    b[w.len++] = mt | 25;
    b[w.len++] = n >>> 8;
    b[w.len++] = n & 0xff;
  } else if (n < 0x100000000) {
    b[w.len++] = mt | 26;
    b[w.len++] = n >>> 24;
    b[w.len++] = (n >>> 16) & 0xff;
    b[w.len++] = (n >>> 8) & 0xff;
    b[w.len++] = n & 0xff;
  } else {
    b[w.len++] = mt | 27;
    const dv = new DataView(b.buffer, b.byteOffset + w.len, 8);
    dv.setUint32(0, Math.floor(n / 0x100000000));
    dv.setUint32(4, n >>> 0);
    w.len += 8;
  }
}

function writeRaw(w: SubsetWriter, bytes: Uint8Array): void {
  reserve(w, bytes.length);
  w.buf.set(bytes, w.len);
  w.len += bytes.length;
}

function writeText(w: SubsetWriter, text: string): void {
  // ASCII (nearly every protocol string) is copied directly: TextEncoder costs a native call each time.
  const n = text.length;
  if (n <= 64) {
    let ascii = true;
    for (let i = 0; i < n && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
    if (ascii) {
      writeHead(w, MT_TEXT, n);
      reserve(w, n);
      for (let i = 0; i < n; i++) w.buf[w.len++] = text.charCodeAt(i);
      return;
    }
  }
  const bytes = textEncoder.encode(text);
  writeHead(w, MT_TEXT, bytes.length);
  writeRaw(w, bytes);
}

/** Encoded text keys, in core deterministic order: bytewise on the encoding (length first, via the head). */
function compareEncoded(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Map keys repeat (the protocol's field names): their encodings are kept, up to a bound. */
const keyCache = new Map<string, Uint8Array>();
const KEY_CACHE_ENTRIES = 1024;

function encodedKey(key: string): Uint8Array {
  let bytes = keyCache.get(key);
  if (bytes) return bytes;
  const w: SubsetWriter = { buf: new Uint8Array(key.length * 3 + 9), len: 0 };
  writeText(w, key);
  bytes = w.buf.slice(0, w.len);
  if (keyCache.size < KEY_CACHE_ENTRIES) keyCache.set(key, bytes);
  return bytes;
}

function writeSubset(w: SubsetWriter, v: unknown): boolean {
  switch (typeof v) {
    case 'string':
      writeText(w, v);
      return true;
    case 'boolean':
      reserve(w, 1);
      w.buf[w.len++] = v ? SIMPLE_TRUE : SIMPLE_FALSE;
      return true;
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) return false; // floats: cbor2's shortest-float rules
      if (v >= 0) writeHead(w, MT_UINT, v);
      else writeHead(w, MT_NEGINT, -1 - v);
      return true;
    case 'object': {
      if (v === null) {
        reserve(w, 1);
        w.buf[w.len++] = SIMPLE_NULL;
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto === Uint8Array.prototype) {
        writeHead(w, MT_BYTES, (v as Uint8Array).length);
        writeRaw(w, v as Uint8Array);
        return true;
      }
      if (proto === Array.prototype) {
        const arr = v as unknown[];
        writeHead(w, MT_ARRAY, arr.length);
        for (let i = 0; i < arr.length; i++) {
          if (!(i in arr) || !writeSubset(w, arr[i])) return false; // a hole is undefined: cbor2's
        }
        return true;
      }
      if (proto !== Object.prototype && proto !== null) return false;
      const keys = Object.keys(v);
      const entries = keys.map((k) => ({ key: encodedKey(k), value: (v as Record<string, unknown>)[k] }));
      entries.sort((a, b) => compareEncoded(a.key, b.key));
      writeHead(w, MT_MAP, entries.length);
      for (const e of entries) {
        writeRaw(w, e.key);
        if (!writeSubset(w, e.value)) return false;
      }
      return true;
    }
    default:
      return false; // undefined, bigint, symbol, function
  }
}

/** Decode exactly one CBOR item; trailing bytes, duplicate keys and indefinite lengths are refused. */
export function decodeStrict<T = unknown>(bytes: Uint8Array, what: string): T {
  const fast = decodeCoreSubset(bytes);
  if (fast !== DECLINED) return fast as T;
  try {
    return decode(bytes, { rejectDuplicateKeys: true, rejectStreaming: true, preferMap: false }) as T;
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${what} is not valid CBOR`, { cause });
  }
}

/** What decodeCoreSubset returns for anything it leaves to cbor2. */
export const DECLINED: unique symbol = Symbol('not in the core deterministic subset');

const MAX_SUBSET_DEPTH = 32;
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * decodeStrict's fast path, the inverse of encodeCoreSubset: one item in core deterministic form (shortest
 * heads, map keys as text in encoded order, so no duplicates) of the same subset, decoded to what cbor2
 * gives (byte strings are views of `bytes`, as cbor2's are). Anything else, well-formed or not, is
 * DECLINED and decoded (or refused) by cbor2, so what is accepted and what it means does not change.
 */
export function decodeCoreSubset(bytes: Uint8Array): unknown {
  const r = { bytes, pos: 0 };
  const value = readSubset(r, 0);
  return r.pos === bytes.length ? value : DECLINED;
}

/** The argument of a head in its shortest form, or -1 (DECLINED) for a longer form, a reserved or indefinite one. */
function readArgument(r: { bytes: Uint8Array; pos: number }, info: number): number {
  const b = r.bytes;
  if (info < 24) return info;
  const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
  if (size === 0 || r.pos + size > b.length) return -1;
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + b[r.pos + i];
  r.pos += size;
  const min = size === 1 ? 24 : size === 2 ? 0x100 : size === 4 ? 0x10000 : 0x100000000;
  return n >= min && n <= Number.MAX_SAFE_INTEGER ? n : -1;
}

function readSubset(r: { bytes: Uint8Array; pos: number }, depth: number): unknown {
  const b = r.bytes;
  if (r.pos >= b.length || depth > MAX_SUBSET_DEPTH) return DECLINED;
  const initial = b[r.pos++];
  const major = initial >> 5;
  if (major === 7) {
    if (initial === 0xf4) return false;
    if (initial === 0xf5) return true;
    if (initial === 0xf6) return null;
    return DECLINED; // undefined, floats, other simple values, break
  }
  if (major === 6) return DECLINED; // tags
  const n = readArgument(r, initial & 0x1f);
  if (n < 0) return DECLINED;
  switch (major) {
    case 0:
      return n;
    case 1:
      return n < Number.MAX_SAFE_INTEGER ? -1 - n : DECLINED;
    case 2:
      if (r.pos + n > b.length) return DECLINED;
      r.pos += n;
      return b.subarray(r.pos - n, r.pos);
    case 3:
      return readTextBody(r, n);
    case 4: {
      if (n > b.length - r.pos) return DECLINED; // each item takes a byte at least
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const item = readSubset(r, depth + 1);
        if (item === DECLINED) return DECLINED;
        out.push(item);
      }
      return out;
    }
    default: {
      if (n > b.length - r.pos) return DECLINED;
      const out: Record<string, unknown> = {};
      let prevStart = -1;
      let prevEnd = -1;
      for (let i = 0; i < n; i++) {
        const keyStart = r.pos;
        if (keyStart >= b.length || b[keyStart] >> 5 !== 3) return DECLINED; // text keys only
        r.pos++;
        const key = readTextBody(r, readArgument(r, b[keyStart] & 0x1f));
        if (typeof key !== 'string' || key === '__proto__') return DECLINED;
        // Strictly increasing encoded keys: the canonical order, and no key twice.
        if (prevStart >= 0 && compareEncoded(b.subarray(prevStart, prevEnd), b.subarray(keyStart, r.pos)) >= 0) return DECLINED;
        prevStart = keyStart;
        prevEnd = r.pos;
        const value = readSubset(r, depth + 1);
        if (value === DECLINED) return DECLINED;
        out[key] = value;
      }
      return out;
    }
  }
}

function readTextBody(r: { bytes: Uint8Array; pos: number }, n: number): string | typeof DECLINED {
  const b = r.bytes;
  if (n < 0 || r.pos + n > b.length) return DECLINED;
  const start = r.pos;
  r.pos += n;
  if (n <= 64) {
    let ascii = '';
    let i = start;
    for (; i < r.pos && b[i] < 0x80; i++) ascii += String.fromCharCode(b[i]);
    if (i === r.pos) return ascii;
  }
  try {
    return fatalUtf8.decode(b.subarray(start, r.pos));
  } catch {
    return DECLINED;
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
