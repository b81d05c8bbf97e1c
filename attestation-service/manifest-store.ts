/**
 * The manifest chain as the service holds it. The first manifest is taken from whoever sets it on a
 * fresh service (trust on first use, recorded in the chain); later ones must be signed by an owner
 * named in the current manifest.
 */
import { encodeDeterministic } from '../shared/cbor.ts';
import { GENESIS_PREV, authorizeUpdate, entryHash, type ManifestChainEntry } from '../shared/manifest/chain.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';

export interface ManifestUpdate {
  manifest: unknown; // validated here
  ownerId: string;
  signature: Uint8Array;
}

export class ManifestStore {
  private entries: ManifestChainEntry[] = [];
  private manifests: Manifest[] = [];
  private headHash: Uint8Array = GENESIS_PREV;
  private readonly listeners: ((head: Uint8Array) => void)[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  get current(): Manifest | undefined {
    return this.manifests.at(-1);
  }

  get head(): Uint8Array {
    return this.headHash;
  }

  get chain(): readonly ManifestChainEntry[] {
    return this.entries;
  }

  history(): { entry: ManifestChainEntry; manifest: Manifest }[] {
    return this.entries.map((entry, i) => ({ entry, manifest: this.manifests[i] }));
  }

  /** The current manifest in the exact encoding its digest covers. */
  currentEncoded(): Uint8Array | undefined {
    return this.current ? encodeDeterministic(this.current) : undefined;
  }

  onChange(listener: (head: Uint8Array) => void): void {
    this.listeners.push(listener);
  }

  async apply(update: ManifestUpdate): Promise<ManifestChainEntry> {
    const next = parseManifest(update.manifest);
    const digest = await authorizeUpdate({ current: this.current, head: this.headHash, next, ownerId: update.ownerId, signature: update.signature });
    const entry: ManifestChainEntry = {
      seq: this.entries.length,
      prev: this.headHash,
      manifestSha256: digest,
      setAt: this.now(),
      authorizedBy: this.current ? update.ownerId : `tofu:${update.ownerId}`,
      signature: update.signature,
    };
    this.entries.push(entry);
    this.manifests.push(next);
    this.headHash = await entryHash(entry);
    for (const l of this.listeners) l(this.headHash);
    return entry;
  }
}
