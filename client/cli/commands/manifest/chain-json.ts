/** The manifest chain as the attestation service serves it in JSON, back into typed entries, checked. */
import { equalBytes, fromBase64Url, fromHex, toHex } from '../../../../shared/bytes.ts';
import { ObscuraError } from '../../../../shared/errors.ts';
import { entryHash, manifestDigest, verifyChainLinks, type ManifestChainEntry } from '../../../../shared/manifest/chain.ts';
import type { Manifest } from '../../../../shared/manifest/schema.ts';
import { parseManifest } from '../../../../shared/manifest/validate-manifest.ts';

export interface ChainEntryJson {
  seq: number;
  prev: string;
  manifestSha256: string;
  setAt: number;
  authorizedBy: string;
  signature: string;
}

export function entryFromJson(e: ChainEntryJson): ManifestChainEntry {
  return { seq: e.seq, prev: fromHex(e.prev), manifestSha256: fromHex(e.manifestSha256), setAt: e.setAt, authorizedBy: e.authorizedBy, signature: fromBase64Url(e.signature) };
}

export interface VerifiedHistory {
  entries: { entry: ManifestChainEntry; hash: Uint8Array; manifest: Manifest }[];
}

/**
 * Check a served history against the attested chain: its links, that it contains the attested head at
 * the attested position, and that every manifest matches the digest its entry names.
 */
export async function verifyHistory(served: { chain: ChainEntryJson[]; manifests: unknown[] }, attested: { chain: readonly ManifestChainEntry[]; head: Uint8Array }): Promise<VerifiedHistory> {
  const entries = served.chain.map(entryFromJson);
  if (entries.length !== served.manifests.length) throw new ObscuraError('ERR_MALFORMED', 'the served history has a different number of entries and manifests');
  if (entries.length < attested.chain.length) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the served history is shorter than the attested chain');
  if (entries.length === 0) return { entries: [] };
  await verifyChainLinks(entries);
  if (attested.chain.length > 0) {
    const at = attested.chain.length - 1;
    if (!equalBytes(await entryHash(entries[at]), attested.head)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', `the served history does not contain the attested head at entry ${at}`);
    }
  }
  const out: VerifiedHistory['entries'] = [];
  for (let i = 0; i < entries.length; i++) {
    const manifest = parseManifest(served.manifests[i]);
    if (!equalBytes(await manifestDigest(manifest), entries[i].manifestSha256)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', `manifest ${i} of the served history does not match the digest its chain entry names`);
    }
    out.push({ entry: entries[i], hash: await entryHash(entries[i]), manifest });
  }
  return { entries: out };
}

export const short = (bytes: Uint8Array) => `${toHex(bytes).slice(0, 16)}…`;
