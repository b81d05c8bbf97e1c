/**
 * The append-only manifest hash chain. Each entry links to the previous entry's hash and names the
 * manifest digest and who authorised it (the first by trust on first use, later ones by an owner of
 * the manifest before). The head (hash of the last entry) is bound into the service's evidence.
 */
import { bufferOf, equalBytes, sha256, toHex } from '../bytes.ts';
import { asRecord, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import type { Manifest } from './schema.ts';

export const GENESIS_PREV = new Uint8Array(32);
const UPDATE_PURPOSE = 'obscura/v1 manifest update';

export interface ManifestChainEntry {
  seq: number;
  prev: Uint8Array; // hash of the previous entry (zeros for the first)
  manifestSha256: Uint8Array;
  setAt: number; // ms since epoch, the service's clock: informational
  authorizedBy: string; // owner id whose key signed the update ('tofu:OWNER' for the first)
  signature: Uint8Array; // ECDSA P-256/SHA-256 (P1363) over updateSigningInput(prev, manifestSha256)
}

export function manifestDigest(manifest: Manifest): Promise<Uint8Array> {
  return sha256(encodeDeterministic(manifest));
}

export function entryHash(entry: ManifestChainEntry): Promise<Uint8Array> {
  return sha256(encodeDeterministic({ ...entry }));
}

/** What an owner signs to authorise `manifestSha256` as the successor of `prev`. */
export function updateSigningInput(prev: Uint8Array, manifestSha256: Uint8Array): Uint8Array {
  return encodeDeterministic({ purpose: UPDATE_PURPOSE, prev, manifestSha256 });
}

export async function importOwnerKey(jwk: Manifest['owners'][number]['publicKeyJwk']): Promise<CryptoKey> {
  return crypto.subtle.importKey('jwk', { ...jwk, ext: true }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
}

export async function signManifestUpdate(privateKey: CryptoKey, prev: Uint8Array, manifestSha256: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, bufferOf(updateSigningInput(prev, manifestSha256))),
  );
}

/**
 * Check that `next` may follow the chain whose current manifest is `current` (undefined for the first).
 * The signer must be an owner of the current manifest; for the first, an owner of the new one (TOFU).
 */
export async function authorizeUpdate(input: {
  current: Manifest | undefined;
  head: Uint8Array;
  next: Manifest;
  ownerId: string;
  signature: Uint8Array;
}): Promise<Uint8Array> {
  const owners = (input.current ?? input.next).owners;
  const owner = owners.find((o) => o.id === input.ownerId);
  if (!owner) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `"${input.ownerId}" is not an owner of the ${input.current ? 'current' : 'new'} manifest`);
  }
  const digest = await manifestDigest(input.next);
  const key = await importOwnerKey(owner.publicKeyJwk);
  const ok = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    bufferOf(input.signature),
    bufferOf(updateSigningInput(input.head, digest)),
  );
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', `the manifest update is not signed by owner "${input.ownerId}"`);
  return digest;
}


export function parseChainEntry(value: unknown, where: string): ManifestChainEntry {
  const m = asRecord(value, where);
  return {
    seq: fieldInt(m, 'seq', where),
    prev: fieldBytes(m, 'prev', where, 32),
    manifestSha256: fieldBytes(m, 'manifestSha256', where, 32),
    setAt: fieldInt(m, 'setAt', where),
    authorizedBy: fieldString(m, 'authorizedBy', where),
    signature: fieldBytes(m, 'signature', where),
  };
}

/** Verify the links of a chain (not the signatures' owners); returns its head. */
export async function verifyChainLinks(entries: readonly ManifestChainEntry[]): Promise<Uint8Array> {
  if (entries.length === 0) throw new ObscuraError('ERR_MALFORMED', 'the manifest chain is empty');
  let prev: Uint8Array = GENESIS_PREV;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.seq !== i) throw new ObscuraError('ERR_MALFORMED', `manifest chain entry ${i} has seq ${e.seq}`);
    if (!equalBytes(e.prev, prev)) throw new ObscuraError('ERR_VALUE_MISMATCH', `manifest chain entry ${i} does not link to entry ${i - 1}`);
    prev = await entryHash(e);
  }
  return prev;
}

/**
 * Does `entries` extend the chain a client saw before (its last seen head at index `seenSeq`)?
 * A different entry at that index means the service showed this client a forked history.
 */
export async function extendsSeenChain(entries: readonly ManifestChainEntry[], seen: { seq: number; head: Uint8Array }): Promise<boolean> {
  if (seen.seq >= entries.length) return false;
  return equalBytes(await entryHash(entries[seen.seq]), seen.head);
}

export const headHex = (head: Uint8Array) => toHex(head);
