import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { SNP_REPORT_OFFSETS as O, SNP_REPORT_SIZE_BYTES, SNP_SIGNED_LENGTH_BYTES, type SnpProductLine, encodeSnpReportBody, parseSnpReport } from './index.ts';

const VECTORS = new URL('../../../test/vectors/sev-snp/', import.meta.url);
const seeds = [
  new Uint8Array(readFileSync(new URL('milan/report.bin', VECTORS))),
  new Uint8Array(readFileSync(new URL('genoa/report.bin', VECTORS))),
];

/** mulberry32: small, seeded, deterministic, so any failure reproduces from its iteration number. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ITERATIONS = 12_000;

describe('parseSnpReport fuzz', () => {
  it(`${ITERATIONS} random and mutated inputs: a report or an ObscuraError, never anything else`, () => {
    const rand = prng(0x5eed_5e55);
    const int = (n: number) => Math.floor(rand() * n);
    const randomBytes = (n: number) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    };
    const hints: (SnpProductLine | undefined)[] = [undefined, undefined, 'Milan', 'Genoa', 'Turin'];
    const codes = new Map<string, number>();
    let accepted = 0;
    const started = Date.now();

    for (let i = 0; i < ITERATIONS; i++) {
      let input: Uint8Array;
      const kind = i % 10;
      if (kind === 0) {
        input = randomBytes(int(1400)); // any length
      } else if (kind === 1) {
        input = randomBytes(SNP_REPORT_SIZE_BYTES); // right length, random content
      } else if (kind <= 4) {
        // A real report with a few flipped bits or overwritten bytes.
        input = seeds[int(seeds.length)].slice();
        const edits = 1 + int(8);
        for (let e = 0; e < edits; e++) {
          const at = int(input.length);
          if (rand() < 0.5) input[at] ^= 1 << int(8);
          else input[at] = int(256);
        }
      } else if (kind <= 7) {
        // Structure-aware: plausible headers so inputs get past the first checks.
        input = seeds[int(seeds.length)].slice();
        const view = new DataView(input.buffer);
        view.setUint32(O.version, 1 + int(6), true);
        if (rand() < 0.5) {
          input[O.cpuidFamId] = [0, 0x19, 0x1a, int(256)][int(4)];
          input[O.cpuidModId] = [0, 0x01, 0x11, 0x02, 0xa1, int(256)][int(6)];
          input[O.cpuidStep] = int(4);
        }
        if (rand() < 0.4) view.setUint32(O.policy, (0x20000 | int(0x4000000)) >>> 0, true);
        if (rand() < 0.3) view.setUint32(O.signerInfo, int(32), true);
        if (rand() < 0.3) view.setUint32(O.vmpl, rand() < 0.5 ? int(4) : int(0x100000000) >>> 0, true);
        if (rand() < 0.3) input.set(randomBytes(8), [O.currentTcb, O.reportedTcb, O.committedTcb, O.launchTcb][int(4)]);
        if (rand() < 0.3) input.set(randomBytes(16), O.launchMitVector);
        if (rand() < 0.2) input[0x18b + int(0x1a0 - 0x18b)] = 1 + int(255);
      } else if (kind === 8) {
        // Truncated or extended real reports.
        const seed = seeds[int(seeds.length)];
        const length = rand() < 0.5 ? int(SNP_REPORT_SIZE_BYTES) : SNP_REPORT_SIZE_BYTES + 1 + int(64);
        input = new Uint8Array(length);
        input.set(seed.subarray(0, Math.min(length, seed.length)));
      } else {
        // Degenerate fills with a valid version.
        input = new Uint8Array(SNP_REPORT_SIZE_BYTES).fill([0x00, 0xff, 0x01][int(3)]);
        new DataView(input.buffer).setUint32(O.version, 2 + int(4), true);
        new DataView(input.buffer).setUint32(O.signatureAlgo, 1, true);
      }

      const hint = hints[int(hints.length)];
      try {
        const report = parseSnpReport(input, hint ? { productLine: hint } : {});
        accepted++;
        // What parses must re-encode to the same signed bytes: the layout lives in one place.
        expect(encodeSnpReportBody(report)).toEqual(input.subarray(0, SNP_SIGNED_LENGTH_BYTES));
      } catch (error) {
        if (!(error instanceof ObscuraError)) {
          throw new Error(`iteration ${i} (kind ${kind}): parseSnpReport threw ${String(error)}`, { cause: error });
        }
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
      }
    }

    // The corpus reached past the size check into every kind of refusal, and some inputs parse.
    expect(accepted).toBeGreaterThan(500);
    for (const code of ['ERR_MALFORMED', 'ERR_UNSUPPORTED_VERSION', 'ERR_RESERVED_NONZERO', 'ERR_VALUE_MISMATCH']) {
      expect(codes.get(code) ?? 0, code).toBeGreaterThan(0);
    }
    expect(Date.now() - started).toBeLessThan(30_000); // no pathological input
  });
});
