import { describe, expect, it } from 'vitest';
import { randomBytes, sha256, toHex } from '../bytes.ts';
import { decryptWeights, encryptWeights, isEncryptedWeights, parseWeightsHeader } from './encrypted-weights.ts';

const codeOf = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string }) => e.code);

describe('encrypted weights (AES-256-GCM, chunked)', () => {
  it('round-trips across chunk boundaries and names the plaintext digest', async () => {
    const key = randomBytes(32);
    for (const size of [0, 1, 1000, 4096, 4097, 10_000]) {
      const pt = randomBytes(size);
      const enc = await encryptWeights(pt, key, 4096);
      expect(isEncryptedWeights(enc)).toBe(true);
      expect(parseWeightsHeader(enc).weightsDigest).toBe(`sha256:${toHex(await sha256(pt))}`);
      expect(toHex(await decryptWeights(enc, key))).toBe(toHex(pt));
    }
  });

  it('refuses another key, a flipped byte, swapped chunks, truncation and another digest', async () => {
    const key = randomBytes(32);
    const pt = randomBytes(10_000);
    const enc = await encryptWeights(pt, key, 4096);
    expect(await codeOf(decryptWeights(enc, randomBytes(32)))).toBe('ERR_OPEN_FAILED');
    const flipped = enc.slice();
    flipped[5000] ^= 1;
    expect(await codeOf(decryptWeights(flipped, key))).toBe('ERR_OPEN_FAILED');
    const c = 4096 + 16;
    const swapped = new Uint8Array([...enc.subarray(0, 64), ...enc.subarray(64 + c, 64 + 2 * c), ...enc.subarray(64, 64 + c), ...enc.subarray(64 + 2 * c)]);
    expect(await codeOf(decryptWeights(swapped, key))).toBe('ERR_OPEN_FAILED');
    expect(await codeOf(decryptWeights(enc.subarray(0, enc.length - (10_000 - 8192 + 16)), key))).toBe('ERR_STREAM_TRUNCATED');
    expect(await codeOf(decryptWeights(enc, key, `sha256:${'00'.repeat(32)}`))).toBe('ERR_VALUE_MISMATCH');
  });
});
