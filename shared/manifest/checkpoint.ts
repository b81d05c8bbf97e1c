/**
 * Signed checkpoints of the manifest chain: the attestation service signs each head it reaches with
 * its checkpoint key (ECDSA P-256, public key in the attested core). A checkpoint can be exported and
 * kept or gossiped; two validly signed checkpoints with the same seq and different heads prove that
 * the service showed two histories.
 */
import { bufferOf, equalBytes, fromBase64Url, toBase64Url, toHex, fromHex } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';

const CHECKPOINT_PURPOSE = 'obscura/v1 manifest checkpoint';
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface ManifestCheckpoint {
  seq: number; // index of the chain entry this head is the hash of
  head: Uint8Array; // entryHash(chain[seq])
  setAt: number; // the entry's setAt (service clock, informational)
}

export interface SignedCheckpoint extends ManifestCheckpoint {
  signature: Uint8Array; // ECDSA P-256/SHA-256 (P1363) over checkpointSigningInput
}

/** The JSON form served at GET /v1/manifest/checkpoint and exported by `obscura manifest checkpoint`. */
export interface CheckpointJson {
  format: 'obscura-manifest-checkpoint/1';
  seq: number;
  head: string; // hex
  setAt: number;
  signature: string; // base64url
  checkpointKey: string; // base64url of the 65-byte point
}

export function checkpointSigningInput(c: ManifestCheckpoint): Uint8Array {
  return encodeDeterministic({ purpose: CHECKPOINT_PURPOSE, seq: c.seq, head: c.head, setAt: c.setAt });
}

export async function signCheckpoint(privateKey: CryptoKey, c: ManifestCheckpoint): Promise<SignedCheckpoint> {
  const signature = new Uint8Array(await crypto.subtle.sign(SIGNING, privateKey, bufferOf(checkpointSigningInput(c))));
  return { seq: c.seq, head: c.head, setAt: c.setAt, signature };
}

export async function verifyCheckpoint(checkpointKey: Uint8Array, c: SignedCheckpoint): Promise<void> {
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('raw', bufferOf(checkpointKey), P256, false, ['verify']);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', 'the checkpoint key is not a P-256 point', { cause });
  }
  const ok = await crypto.subtle.verify(SIGNING, key, bufferOf(c.signature), bufferOf(checkpointSigningInput(c)));
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', `the checkpoint for entry ${c.seq} is not signed by the attested checkpoint key`);
}

export function checkpointToJson(c: SignedCheckpoint, checkpointKey: Uint8Array): CheckpointJson {
  return { format: 'obscura-manifest-checkpoint/1', seq: c.seq, head: toHex(c.head), setAt: c.setAt, signature: toBase64Url(c.signature), checkpointKey: toBase64Url(checkpointKey) };
}

export function checkpointFromJson(value: unknown): { checkpoint: SignedCheckpoint; checkpointKey: Uint8Array } {
  const v = value as Partial<CheckpointJson> | undefined;
  if (
    v?.format !== 'obscura-manifest-checkpoint/1' ||
    !Number.isSafeInteger(v.seq) ||
    typeof v.head !== 'string' ||
    !Number.isSafeInteger(v.setAt) ||
    typeof v.signature !== 'string' ||
    typeof v.checkpointKey !== 'string'
  ) {
    throw new ObscuraError('ERR_MALFORMED', 'not a manifest checkpoint (obscura-manifest-checkpoint/1)');
  }
  const head = fromHex(v.head);
  if (head.length !== 32) throw new ObscuraError('ERR_MALFORMED', 'a checkpoint head is 32 bytes');
  return { checkpoint: { seq: v.seq!, head, setAt: v.setAt!, signature: fromBase64Url(v.signature) }, checkpointKey: fromBase64Url(v.checkpointKey) };
}

/** Two signed checkpoints (each already verified) that disagree about one entry prove a fork. */
export function checkpointsConflict(a: ManifestCheckpoint, b: ManifestCheckpoint): boolean {
  return a.seq === b.seq && !equalBytes(a.head, b.head);
}
