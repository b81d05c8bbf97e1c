/**
 * The manifest chain as the service holds it. The first manifest is taken from whoever sets it on a
 * fresh service (trust on first use, recorded in the chain); later ones must be signed by an owner
 * named in the current manifest, over the current head (an update signed over an older head would
 * fork the chain and is refused). Each head reached is signed as a checkpoint. An update becomes
 * visible only once it is durable (sealed to disk), so a restart can never roll the chain back past
 * a head a client has seen.
 */
import { equalBytes, toHex } from '../shared/bytes.ts';
import { encodeDeterministic } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { GENESIS_PREV, authorizeUpdate, entryHash, manifestDigest, verifyChainLinks, type ManifestChainEntry } from '../shared/manifest/chain.ts';
import type { ManifestCheckpoint, SignedCheckpoint } from '../shared/manifest/checkpoint.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';

export interface ManifestUpdate {
  manifest: unknown; // validated here
  ownerId: string;
  signature: Uint8Array;
  prev?: Uint8Array; // the head the update was signed over; when given, it must be the current head
}

export interface ManifestStoreSnapshot {
  entries: ManifestChainEntry[];
  manifests: Manifest[];
  checkpoints: SignedCheckpoint[];
}

export type CheckpointSigner = (c: ManifestCheckpoint) => Promise<SignedCheckpoint>;

export class ManifestStore {
  private entries: ManifestChainEntry[] = [];
  private manifests: Manifest[] = [];
  private checkpoints: SignedCheckpoint[] = [];
  private headHash: Uint8Array = GENESIS_PREV;
  private readonly listeners: ((head: Uint8Array) => void)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private durable: (pending: ManifestStoreSnapshot, commit: () => void) => Promise<void> = async (_p, commit) => commit();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly signCheckpoint?: CheckpointSigner,
  ) {}

  /** Rebuild a store from a sealed snapshot, re-checking every link, digest, signature and checkpoint. */
  static async restore(snapshot: ManifestStoreSnapshot, now: () => number, signCheckpoint?: CheckpointSigner): Promise<ManifestStore> {
    const store = new ManifestStore(now, signCheckpoint);
    const { entries, checkpoints } = snapshot;
    if (entries.length !== snapshot.manifests.length || checkpoints.length !== entries.length) {
      throw new ObscuraError('ERR_MALFORMED', 'the stored manifest chain, manifests and checkpoints differ in length');
    }
    const manifests = snapshot.manifests.map((m) => parseManifest(m));
    let head: Uint8Array = GENESIS_PREV;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      await authorizeUpdate({ current: manifests[i - 1], head, next: manifests[i], ownerId: e.authorizedBy.replace(/^tofu:/, ''), signature: e.signature });
      if (!equalBytes(await manifestDigest(manifests[i]), e.manifestSha256)) throw new ObscuraError('ERR_VALUE_MISMATCH', `stored manifest ${i} does not match its chain entry`);
      head = await entryHash(e);
      if (checkpoints[i].seq !== i || !equalBytes(checkpoints[i].head, head)) throw new ObscuraError('ERR_VALUE_MISMATCH', `stored checkpoint ${i} does not match the chain`);
    }
    if (entries.length) head = await verifyChainLinks(entries);
    store.entries = [...entries];
    store.manifests = manifests;
    store.checkpoints = [...checkpoints];
    store.headHash = head;
    return store;
  }

  snapshot(): ManifestStoreSnapshot {
    return { entries: [...this.entries], manifests: [...this.manifests], checkpoints: [...this.checkpoints] };
  }

  /**
   * How an update is made durable: `persist` writes the state as it will be after the update and calls
   * `commit` (which makes the update visible) once that write is on disk.
   */
  setDurability(persist: (pending: ManifestStoreSnapshot, commit: () => void) => Promise<void>): void {
    this.durable = persist;
  }

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

  /** The signed checkpoint of entry `seq` (default: the head); undefined before the first manifest. */
  checkpoint(seq = this.entries.length - 1): SignedCheckpoint | undefined {
    return this.checkpoints[seq];
  }

  /** The chain entry whose head this is, or undefined when the chain never reached it. */
  seqOf(head: Uint8Array): number | undefined {
    const seq = this.checkpoints.findIndex((c) => equalBytes(c.head, head));
    return seq < 0 ? undefined : seq;
  }

  /** The current manifest in the exact encoding its digest covers. */
  currentEncoded(): Uint8Array | undefined {
    return this.current ? encodeDeterministic(this.current) : undefined;
  }

  onChange(listener: (head: Uint8Array) => void): void {
    this.listeners.push(listener);
  }

  /** Updates are applied one at a time: each is checked against the head the one before left. */
  apply(update: ManifestUpdate): Promise<ManifestChainEntry> {
    const run = this.queue.then(() => this.applyNow(update));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(update: ManifestUpdate): Promise<ManifestChainEntry> {
    const next = parseManifest(update.manifest);
    if (update.prev && !equalBytes(update.prev, this.headHash)) {
      throw new ObscuraError(
        'ERR_VALUE_MISMATCH',
        `the update was signed over head ${toHex(update.prev).slice(0, 16)}…, but the chain's head is ${toHex(this.headHash).slice(0, 16)}… (entry ${this.entries.length - 1}): ` +
          'it would fork the chain; fetch the current manifest and sign the update again',
      );
    }
    if (!update.signature?.length) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the manifest update is not signed');
    const digest = await authorizeUpdate({ current: this.current, head: this.headHash, next, ownerId: update.ownerId, signature: update.signature });
    const entry: ManifestChainEntry = {
      seq: this.entries.length,
      prev: this.headHash,
      manifestSha256: digest,
      setAt: this.now(),
      authorizedBy: this.current ? update.ownerId : `tofu:${update.ownerId}`,
      signature: update.signature,
    };
    const head = await entryHash(entry);
    const checkpoint: SignedCheckpoint = this.signCheckpoint
      ? await this.signCheckpoint({ seq: entry.seq, head, setAt: entry.setAt })
      : { seq: entry.seq, head, setAt: entry.setAt, signature: new Uint8Array(0) };
    const pending = { entries: [...this.entries, entry], manifests: [...this.manifests, next], checkpoints: [...this.checkpoints, checkpoint] };
    let committed = false;
    await this.durable(pending, () => {
      this.entries = pending.entries;
      this.manifests = pending.manifests;
      this.checkpoints = pending.checkpoints;
      this.headHash = head;
      committed = true;
      for (const l of this.listeners) l(head);
    });
    if (!committed) throw new ObscuraError('ERR_UPSTREAM', 'the manifest update could not be made durable');
    return entry;
  }
}
