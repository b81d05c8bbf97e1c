/**
 * The client's log of the manifest history it has trusted. A service whose chain does not extend it
 * showed this client a different history (a fork): refused, or warned about, by policy.
 */
import { toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { entryHash, type ManifestChainEntry } from '../../shared/manifest/chain.ts';

export interface SeenManifestHead {
  seq: number;
  head: string; // hex of the entry hash at seq
}

/** Where the log lives: a file in Node, IndexedDB or a caller's store in browsers. */
export interface ManifestLogStore {
  load(): Promise<SeenManifestHead | undefined>;
  save(seen: SeenManifestHead): Promise<void>;
}

export class MemoryManifestLogStore implements ManifestLogStore {
  private seen?: SeenManifestHead;
  async load() {
    return this.seen;
  }
  async save(seen: SeenManifestHead) {
    this.seen = seen;
  }
}

export type ForkDecision = { extends: true } | { extends: false; message: string };

/** Compare the service's chain with what this client saw; record the new head when it extends. */
export async function checkAndRecordChain(store: ManifestLogStore, chain: readonly ManifestChainEntry[]): Promise<ForkDecision> {
  const seen = await store.load();
  const last = chain.length - 1;
  if (seen) {
    const at = chain[seen.seq];
    if (!at || toHex(await entryHash(at)) !== seen.head) {
      return {
        extends: false,
        message: `the service's manifest history does not extend the one this client trusted before (entry ${seen.seq}, head ${seen.head.slice(0, 16)}…)`,
      };
    }
  }
  await store.save({ seq: last, head: toHex(await entryHash(chain[last])) });
  return { extends: true };
}

export function forkError(message: string): ObscuraError {
  return new ObscuraError('ERR_VALUE_MISMATCH', `${message}; if you expected a reset, clear the client's manifest log`);
}

