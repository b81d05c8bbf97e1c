/**
 * The parsers meet untrusted bytes: whatever they get, they either parse or throw ObscuraError, and
 * never loop or throw anything else. Seeded, so a failure reproduces.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { fromHex } from '../../bytes.ts';
import { parseNvidiaSpdmEvidence } from './spdm.ts';
import { parseNvidiaOpaqueData } from './opaque-data.ts';
import { nvidiaGpuFacts } from './facts.ts';

const read = (name: string) => fromHex(readFileSync(new URL(`../../../test/vectors/nvidia/${name}/report.hex`, import.meta.url), 'utf8'));
const SEEDS = [read('h100-a'), read('h100-b')];

/** mulberry32: small, fast, deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(next: () => number, seed: Uint8Array): Uint8Array {
  const int = (n: number) => Math.floor(next() * n);
  let b = seed.slice();
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    switch (int(8)) {
      case 0: // bit flip
        if (b.length) b[int(b.length)] ^= 1 << int(8);
        break;
      case 1: // random byte
        if (b.length) b[int(b.length)] = int(256);
        break;
      case 2: // truncate
        b = b.slice(0, int(b.length + 1));
        break;
      case 3: { // insert random bytes
        const at = int(b.length + 1);
        const ins = Uint8Array.from({ length: 1 + int(64) }, () => int(256));
        b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
        break;
      }
      case 4: { // delete a run
        const at = int(b.length + 1);
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + int(64))]);
        break;
      }
      case 5: { // rewrite a length field to an extreme or near value
        const fields = [41, 42, 43, 44, 3597, 3598, 45 + 2, 45 + 5, 45 + 55 * int(64) + 2, 45 + 55 * int(64) + 5];
        const at = fields[int(fields.length)];
        if (at < b.length) b[at] = [0, 1, 0x7f, 0xff, b[at] + 1, b[at] - 1][int(6)] & 0xff;
        break;
      }
      case 6: { // splice the two captures
        const other = SEEDS[int(SEEDS.length)];
        const at = int(Math.min(b.length, other.length));
        b = Uint8Array.from([...b.subarray(0, at), ...other.subarray(at)]);
        break;
      }
      default: { // duplicate a run
        const at = int(b.length + 1);
        const run = b.subarray(at, at + int(128));
        b = Uint8Array.from([...b.subarray(0, at), ...run, ...b.subarray(at)]);
      }
    }
  }
  return b;
}

function outcome(fn: () => void): string {
  try {
    fn();
    return 'parsed';
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw new Error(`not an ObscuraError: ${String(e)}`, { cause: e });
  }
}

describe('parser fuzz', () => {
  it('12,000 seeded random and mutated evidences yield a parse or an ObscuraError', () => {
    const next = rng(0x0b5c0a);
    const tally = new Map<string, number>();
    let slowest = 0;
    for (let i = 0; i < 12_000; i++) {
      let input: Uint8Array | string;
      if (i % 6 === 0) {
        // Random bytes, often behind a valid request header so the response parser is reached.
        const body = Uint8Array.from({ length: Math.floor(next() * 400) }, () => Math.floor(next() * 256));
        input = next() < 0.5 ? body : Uint8Array.from([...SEEDS[0].subarray(0, 37 + Math.floor(next() * 60)), ...body]);
      } else if (i % 6 === 1) {
        // Hex text: mostly valid hex of a mutation, sometimes damaged.
        const hex = Array.from(mutate(next, SEEDS[i % 2]), (x) => x.toString(16).padStart(2, '0')).join('');
        const at = Math.floor(next() * hex.length);
        input = next() < 0.3 ? hex.slice(0, at) + 'xg '[Math.floor(next() * 3)] + hex.slice(at + 1) : hex;
      } else {
        input = mutate(next, SEEDS[i % 2]);
      }
      const start = performance.now();
      const result = outcome(() => {
        nvidiaGpuFacts(parseNvidiaSpdmEvidence(input));
      });
      slowest = Math.max(slowest, performance.now() - start);
      tally.set(result, (tally.get(result) ?? 0) + 1);
    }
    // Every kind of refusal is reached, and some mutations (of signed bytes) still parse.
    expect([...tally.keys()].sort()).toEqual(['ERR_MALFORMED', 'ERR_RESERVED_NONZERO', 'ERR_UNSUPPORTED_VERSION', 'parsed']);
    expect(slowest).toBeLessThan(250);
  });

  it('10,000 seeded opaque data blobs yield a parse or an ObscuraError', () => {
    const next = rng(42);
    const opaque = [SEEDS[0].subarray(3599, 3599 + 422), SEEDS[1].subarray(3599, 3599 + 354)];
    let parsed = 0;
    for (let i = 0; i < 10_000; i++) {
      const input = i % 4 === 0
        ? Uint8Array.from({ length: Math.floor(next() * 64) }, () => Math.floor(next() * 256))
        : mutate(next, opaque[i % 2]);
      if (outcome(() => parseNvidiaOpaqueData(input)) === 'parsed') parsed++;
    }
    expect(parsed).toBeGreaterThan(0);
  });
});
