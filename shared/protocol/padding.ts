/**
 * Size-bucket padding: plaintexts are framed as u32 length ‖ content ‖ zeros up to a bucket, so
 * ciphertext sizes reveal the bucket, not the token or prompt length.
 */
import { ObscuraError } from '../errors.ts';

/** Bucket sizes in bytes; past the last one, sizes round up to a multiple of it. */
export const DEFAULT_PADDING_BUCKETS_BYTES = [256, 1024, 4096, 16384] as const;
const LENGTH_PREFIX_BYTES = 4;

export function paddedSize(contentLength: number, buckets: readonly number[] = DEFAULT_PADDING_BUCKETS_BYTES): number {
  const needed = contentLength + LENGTH_PREFIX_BYTES;
  if (buckets.length === 0) return needed;
  for (const b of buckets) if (needed <= b) return b;
  const last = buckets[buckets.length - 1];
  return Math.ceil(needed / last) * last;
}

export function pad(content: Uint8Array, buckets: readonly number[] = DEFAULT_PADDING_BUCKETS_BYTES): Uint8Array {
  const out = new Uint8Array(paddedSize(content.length, buckets));
  new DataView(out.buffer).setUint32(0, content.length);
  out.set(content, LENGTH_PREFIX_BYTES);
  return out;
}

export function unpad(padded: Uint8Array): Uint8Array {
  if (padded.length < LENGTH_PREFIX_BYTES) throw new ObscuraError('ERR_MALFORMED', 'padded plaintext is shorter than its length prefix');
  const length = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (length > padded.length - LENGTH_PREFIX_BYTES) throw new ObscuraError('ERR_MALFORMED', 'padded plaintext length prefix exceeds its size');
  return padded.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length);
}
