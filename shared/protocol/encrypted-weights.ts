/**
 * Model weights encrypted at rest: AES-256-GCM in chunks, so a large file is opened piece by piece and
 * any change, reordering, truncation or extension of the chunks is detected.
 *
 * Layout: header (64 bytes) then chunks.
 *   header: "OBSCURA-WEIGHTS\x01" (16) | chunk size (4, BE) | plaintext length (8, BE) |
 *           weights digest (32: sha256 of the plaintext, as the manifest names it) | nonce prefix (4)
 *   chunk i: AES-256-GCM(key, iv = nonce prefix || i (8, BE), aad = header || i (8) || final (1))
 *           of min(chunk size, what remains) bytes, plus its 16-byte tag.
 * The key (32 bytes) is the model key the attestation service keeps and releases only to workers
 * whose manifest lets their AI code load these weights.
 */
import { bufferOf, concatBytes, equalBytes, fromHex, randomBytes, sha256, toHex, utf8 } from '../bytes.ts';
import { ObscuraError } from '../errors.ts';

const MAGIC = concatBytes(utf8('OBSCURA-WEIGHTS'), new Uint8Array([1]));
export const WEIGHTS_HEADER_BYTES = 64;
export const DEFAULT_WEIGHTS_CHUNK_BYTES = 1024 * 1024;
const TAG_BYTES = 16;
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;

export interface WeightsHeader {
  chunkBytes: number;
  plaintextBytes: number;
  weightsDigest: string; // sha256:HEX
  noncePrefix: Uint8Array;
}

export function isEncryptedWeights(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && equalBytes(bytes.subarray(0, MAGIC.length), MAGIC);
}

function encodeHeader(h: WeightsHeader): Uint8Array {
  const out = new Uint8Array(WEIGHTS_HEADER_BYTES);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(16, h.chunkBytes);
  view.setBigUint64(20, BigInt(h.plaintextBytes));
  out.set(fromHex(h.weightsDigest.replace(/^sha256:/, '')), 28);
  out.set(h.noncePrefix, 60);
  return out;
}

export function parseWeightsHeader(bytes: Uint8Array): WeightsHeader {
  if (!isEncryptedWeights(bytes)) throw new ObscuraError('ERR_MALFORMED', 'not an encrypted weights file');
  if (bytes.length < WEIGHTS_HEADER_BYTES) throw new ObscuraError('ERR_MALFORMED', 'the encrypted weights file is truncated (header)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, WEIGHTS_HEADER_BYTES);
  const chunkBytes = view.getUint32(16);
  const plaintextBytes = Number(view.getBigUint64(20));
  if (chunkBytes === 0 || chunkBytes > MAX_CHUNK_BYTES || !Number.isSafeInteger(plaintextBytes)) throw new ObscuraError('ERR_MALFORMED', 'the encrypted weights header is not valid');
  return { chunkBytes, plaintextBytes, weightsDigest: `sha256:${toHex(bytes.subarray(28, 60))}`, noncePrefix: bytes.slice(60, 64) };
}

function chunkParams(header: Uint8Array, noncePrefix: Uint8Array, index: number, final: boolean): { iv: Uint8Array; aad: Uint8Array } {
  const counter = new Uint8Array(8);
  new DataView(counter.buffer).setBigUint64(0, BigInt(index));
  return { iv: concatBytes(noncePrefix, counter), aad: concatBytes(header, counter, new Uint8Array([final ? 1 : 0])) };
}

const importKey = (key: Uint8Array, usage: 'encrypt' | 'decrypt') => {
  if (key.length !== 32) throw new ObscuraError('ERR_USAGE', 'a model key is 32 bytes');
  return crypto.subtle.importKey('raw', bufferOf(key), 'AES-GCM', false, [usage]);
};

export async function encryptWeights(plaintext: Uint8Array, key: Uint8Array, chunkBytes = DEFAULT_WEIGHTS_CHUNK_BYTES): Promise<Uint8Array> {
  const weightsDigest = `sha256:${toHex(await sha256(plaintext))}`;
  const h = { chunkBytes, plaintextBytes: plaintext.length, weightsDigest, noncePrefix: randomBytes(4) };
  const header = encodeHeader(h);
  const aes = await importKey(key, 'encrypt');
  const chunks = Math.max(1, Math.ceil(plaintext.length / chunkBytes));
  const parts: Uint8Array[] = [header];
  for (let i = 0; i < chunks; i++) {
    const { iv, aad } = chunkParams(header, h.noncePrefix, i, i === chunks - 1);
    const pt = plaintext.subarray(i * chunkBytes, Math.min(plaintext.length, (i + 1) * chunkBytes));
    parts.push(new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: bufferOf(iv), additionalData: bufferOf(aad) }, aes, bufferOf(pt))));
  }
  return concatBytes(...parts);
}

/** The plaintext weights, in memory; checks every chunk, the length and the digest in the header. */
export async function decryptWeights(bytes: Uint8Array, key: Uint8Array, expectedDigest?: string): Promise<Uint8Array> {
  const h = parseWeightsHeader(bytes);
  if (expectedDigest && h.weightsDigest !== expectedDigest) throw new ObscuraError('ERR_VALUE_MISMATCH', `the weights are ${h.weightsDigest}, not ${expectedDigest}`);
  const header = bytes.subarray(0, WEIGHTS_HEADER_BYTES);
  const chunks = Math.max(1, Math.ceil(h.plaintextBytes / h.chunkBytes));
  const expectedLength = WEIGHTS_HEADER_BYTES + h.plaintextBytes + chunks * TAG_BYTES;
  if (bytes.length !== expectedLength) throw new ObscuraError('ERR_STREAM_TRUNCATED', `the encrypted weights are ${bytes.length} bytes, not ${expectedLength}: truncated or extended`);
  const aes = await importKey(key, 'decrypt');
  const out = new Uint8Array(h.plaintextBytes);
  let at = WEIGHTS_HEADER_BYTES;
  for (let i = 0; i < chunks; i++) {
    const ptLength = Math.min(h.chunkBytes, h.plaintextBytes - i * h.chunkBytes);
    const { iv, aad } = chunkParams(header, h.noncePrefix, i, i === chunks - 1);
    let pt: ArrayBuffer;
    try {
      pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bufferOf(iv), additionalData: bufferOf(aad) }, aes, bufferOf(bytes.subarray(at, at + ptLength + TAG_BYTES)));
    } catch (cause) {
      out.fill(0);
      throw new ObscuraError('ERR_OPEN_FAILED', `chunk ${i} of the encrypted weights does not open: another key, or changed`, { cause });
    }
    out.set(new Uint8Array(pt), i * h.chunkBytes);
    at += ptLength + TAG_BYTES;
  }
  if (`sha256:${toHex(await sha256(out))}` !== h.weightsDigest) {
    out.fill(0);
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the decrypted weights do not match the digest in their header');
  }
  return out;
}
