/**
 * encodeDeterministic's own encoder (encodeCoreSubset) must give cbor2's `{ cde: true }` bytes exactly,
 * or decline: everything hashed or authenticated depends on it. Checked on fixed edge cases and on
 * many random values (seeded, so a failure reproduces), including the sealed-request header's shape.
 */
import { decode, encode } from 'cbor2';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.ts';
import { DECLINED, decodeCoreSubset, decodeStrict, encodeCoreSubset, encodeDeterministic } from './cbor.ts';

const cbor2Cde = (v: unknown) => toHex(encode(v, { cde: true }));
/** decodeStrict as it was: cbor2 alone, with the same options. */
const cbor2Strict = (bytes: Uint8Array): { value: unknown } | 'refused' => {
  try {
    return { value: decode(bytes, { rejectDuplicateKeys: true, rejectStreaming: true, preferMap: false }) };
  } catch {
    return 'refused';
  }
};
const viaDecodeStrict = (bytes: Uint8Array): { value: unknown } | 'refused' => {
  try {
    return { value: decodeStrict(bytes, 'x') };
  } catch (e) {
    expect((e as { code?: string }).code).toBe('ERR_MALFORMED');
    return 'refused';
  }
};

/** xorshift32: a seeded generator, so a failing value can be rebuilt from the seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick };
}

type Rng = ReturnType<typeof rng>;

const CHARS = ['a', 'b', 'z', 'A', '_', '/', ' ', '0', 'é', 'ß', '€', '中', '😀', '\u007f', '\u0080', '\uffff', '\ud800'];

function randomString(r: Rng, wellFormed = false): string {
  const len = r.pick([0, 1, 2, 3, 5, 23, 24, 25, 63, 64, 65, 255, 256, 300]);
  let out = '';
  const palette = r.next() < 0.6 ? CHARS.slice(0, 8) : CHARS.slice(0, wellFormed ? -1 : undefined);
  for (let i = 0; i < len; i++) out += r.pick(palette);
  return out;
}

function randomInt(r: Rng): number {
  const edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 1_764_000_000_000, Number.MAX_SAFE_INTEGER];
  const base = r.next() < 0.5 ? r.pick(edges) : r.int(2 ** 31) * (r.next() < 0.3 ? 2 ** 20 : 1);
  const v = Math.min(base + r.pick([-1, 0, 0, 1]), Number.MAX_SAFE_INTEGER);
  return r.next() < 0.3 ? -v - (v === 0 ? 1 : 0) : v;
}

/** Mostly inside the subset; `outside` lets some values cbor2 alone can encode (floats, -0, undefined, ...). */
function randomValue(r: Rng, depth: number, outside: boolean): unknown {
  const kinds = ['int', 'string', 'bytes', 'bool', 'null', ...(depth < 4 ? ['array', 'object', 'object'] : [])];
  if (outside) kinds.push('float', 'negzero', 'undefined', 'bigint', 'map', 'date', 'hole');
  switch (r.pick(kinds)) {
    case 'int':
      return randomInt(r);
    case 'string':
      return randomString(r);
    case 'bytes': {
      const b = new Uint8Array(r.pick([0, 1, 16, 23, 24, 255, 256, 1000])).map(() => r.int(256));
      // A view into a larger buffer is encoded as the view only.
      return r.next() < 0.3 ? new Uint8Array([9, ...b, 9]).subarray(1, b.length + 1) : b;
    }
    case 'bool':
      return r.next() < 0.5;
    case 'null':
      return null;
    case 'array':
      return Array.from({ length: r.pick([0, 1, 2, 5, 24]) }, () => randomValue(r, depth + 1, outside));
    case 'object': {
      const o: Record<string, unknown> = r.next() < 0.1 ? Object.create(null) : {};
      const n = r.pick([0, 1, 2, 3, 8, 9, 25]);
      for (let i = 0; i < n; i++) o[r.next() < 0.2 ? String(r.int(100)) : randomString(r).slice(0, r.pick([1, 2, 5, 30]))] = randomValue(r, depth + 1, outside);
      return o;
    }
    case 'float':
      return r.pick([1.5, 0.1, -2.25, 1e300, NaN, Infinity, 2 ** 60]);
    case 'negzero':
      return -0;
    case 'undefined':
      return undefined;
    case 'bigint':
      return BigInt(randomInt(r)) * 1000n;
    case 'map':
      return new Map([[1, 'a']]);
    case 'date':
      return new Date(1_700_000_000_000);
    case 'hole':
      return [1, , 3]; // eslint-disable-line no-sparse-arrays
  }
  throw new Error('unreachable');
}

describe('deterministic CBOR', () => {
  it('matches cbor2 on edge cases, and declines what it does not encode', () => {
    const inside: unknown[] = [
      0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -256, -257, -(2 ** 32), -(2 ** 32) - 1, Number.MIN_SAFE_INTEGER,
      '', 'x'.repeat(23), 'x'.repeat(24), 'x'.repeat(64), 'x'.repeat(65), 'x'.repeat(70_000), 'é', '\ud800', '😀', true, false, null,
      new Uint8Array(0), new Uint8Array(300).fill(7), new Uint8Array(new ArrayBuffer(8), 2, 3), [], [[], {}], Array.from({ length: 300 }, (_, i) => i),
      { bb: 1, a: 2, c: 3, aa: 4 }, { é: 1, z: 2, zz: 3 }, { ['k'.repeat(23)]: 1, ['k'.repeat(24)]: 2, a: 0 }, { 10: 'a', 9: 'b', '-1': 'c' },
      Object.assign(Object.create(null) as object, { b: 1, a: 2 }), { toJSON: 'not a function' },
    ];
    for (const [i, v] of inside.entries()) {
      expect(encodeCoreSubset(v), `case #${i}`).toBeDefined();
      expect(toHex(encodeDeterministic(v))).toBe(cbor2Cde(v));
    }
    class Point {
      x = 1;
    }
    const outside: unknown[] = [
      -0, 1.5, NaN, Infinity, undefined, 5n, Symbol.for('s'), Buffer.from([1, 2]), new Date(0), new Map([[1, 2]]), new Set([1]), new Point(), [1, , 3], // eslint-disable-line no-sparse-arrays
      new Uint16Array(2), { a: undefined }, { a: 1.5 }, { toJSON: () => 'x' }, [() => 1],
    ];
    for (const [i, v] of outside.entries()) {
      expect(encodeCoreSubset(v), `case #${i}`).toBeUndefined();
      let expected: string;
      try {
        expected = cbor2Cde(v);
      } catch {
        expect(() => encodeDeterministic(v)).toThrow(); // what cbor2 refuses stays refused
        continue;
      }
      expect(toHex(encodeDeterministic(v))).toBe(expected);
    }
  });

  it('matches cbor2 on 1200 random values, inside the subset and around it', () => {
    const r = rng(0x0b5c0a);
    let fast = 0;
    for (let i = 0; i < 1200; i++) {
      const v = randomValue(r, 0, i % 3 === 0);
      const subset = encodeCoreSubset(v);
      if (subset) fast++;
      expect(toHex(encodeDeterministic(v)), `value #${i}`).toBe(cbor2Cde(v));
      if (subset) expect(toHex(subset)).toBe(cbor2Cde(v));
    }
    expect(fast).toBeGreaterThan(750); // the fast path is what runs, not the fallback
  });

  it('matches cbor2 on random sealed-request headers (the per-request hot path)', () => {
    const r = rng(0x5ea1ed);
    const routingValues = [() => randomString(r, true), () => randomInt(r), () => r.next() < 0.5, () => ({ include_usage: r.next() < 0.5 }), () => null];
    for (let i = 0; i < 1000; i++) {
      const routing: Record<string, unknown> = {};
      for (const k of ['model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'n']) if (r.next() < 0.5) routing[k] = r.pick(routingValues)();
      const header = {
        v: 1,
        suite: 'hkdf-sha256/aes-256-gcm',
        sid: new Uint8Array(16).map(() => r.int(256)),
        salt: new Uint8Array(16).map(() => r.int(256)),
        ts: 1_764_000_000_000 + r.int(2 ** 31),
        method: r.pick(['GET', 'POST']),
        path: `/v1/${randomString(r, true)}`,
        routing,
      };
      const ct = new Uint8Array(r.pick([16, 272, 1040])).map(() => r.int(256));
      expect(encodeCoreSubset(header)).toBeDefined();
      expect(toHex(encodeDeterministic(header))).toBe(cbor2Cde(header));
      expect(toHex(encodeDeterministic({ ...header, ct }))).toBe(cbor2Cde({ ...header, ct }));
      expect(decodeStrict(encodeDeterministic(header), 'header')).toEqual(header);
    }
  });

  it('decodes what it encodes as cbor2 does (byte strings are views of the input, as cbor2\'s are)', () => {
    const r = rng(0xdec0de);
    let fast = 0;
    for (let i = 0; i < 1000; i++) {
      const v = randomValue(r, 0, i % 3 === 0);
      let bytes: Uint8Array;
      try {
        bytes = encode(v, { cde: true });
      } catch {
        continue;
      }
      const expected = cbor2Strict(bytes);
      const got = decodeCoreSubset(bytes);
      if (got !== DECLINED) {
        fast++;
        expect(expected).not.toBe('refused');
        expect(got, `value #${i}`).toEqual((expected as { value: unknown }).value);
      }
      expect(viaDecodeStrict(bytes), `value #${i}`).toEqual(expected);
    }
    expect(fast).toBeGreaterThan(450);
    const bytes = encodeDeterministic({ ct: new Uint8Array([1, 2, 3]) });
    const ct = (decodeStrict(bytes, 'x') as { ct: Uint8Array }).ct;
    expect([ct.buffer === bytes.buffer, ct.byteOffset]).toEqual([true, 5]); // a1 62 "ct" 43 …
  });

  it('leaves non-canonical and broken input to cbor2: the same values, the same refusals', () => {
    const cases = [
      '1805', // 5 in a longer head than needed
      'a2616201616102', // keys out of order
      'a2616101616102', // a duplicate key
      'a1016161', // an integer key
      'a1695f5f70726f746f5f5f01', // {"__proto__": 1}
      '9f0102ff', // indefinite-length array
      'c11a5f5f5f5f', // a tag
      'f93e00', // a float
      '62fffe', // text that is not UTF-8
      '0102', // trailing bytes
      '1b0020000000000000', // 2^53: beyond safe integers (a bigint in cbor2)
      '3b001fffffffffffff', // -2^53 - 1
      '', // nothing
      '5a00000010', // a byte string longer than the input
    ];
    for (const hex of cases) {
      const bytes = fromHex(hex);
      expect(decodeCoreSubset(bytes), hex).toBe(DECLINED);
      expect(viaDecodeStrict(bytes), hex).toEqual(cbor2Strict(bytes));
    }
  });

  it('agrees with cbor2 on 2000 randomly damaged encodings (flipped, cut, extended)', () => {
    const r = rng(0xbad5eed);
    for (let i = 0; i < 2000; i++) {
      const bytes = encode(randomValue(r, 0, false), { cde: true }).slice();
      const kind = r.int(4);
      let damaged: Uint8Array;
      if (kind === 0 && bytes.length) {
        damaged = bytes;
        damaged[r.int(bytes.length)] ^= 1 << r.int(8);
      } else if (kind === 1) damaged = bytes.subarray(0, r.int(bytes.length + 1));
      else if (kind === 2) damaged = new Uint8Array([...bytes, r.int(256)]);
      else {
        damaged = bytes;
        damaged[r.int(Math.max(1, Math.min(bytes.length, 4)))] = r.int(256);
      }
      expect(viaDecodeStrict(damaged), `damage #${i}: ${toHex(damaged).slice(0, 80)}`).toEqual(cbor2Strict(damaged));
    }
  });
});
