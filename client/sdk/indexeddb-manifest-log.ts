/**
 * The manifest log in IndexedDB (browsers): what a page's SDK remembers of the service's manifest
 * history across reloads, per endpoint. Callers may still pass any ManifestLogStore of their own.
 */
import { ObscuraError } from '../../shared/errors.ts';
import type { ManifestLogStore, SeenManifestHead } from './manifest-log.ts';

const DB_NAME = 'obscura-client';
const DB_VERSION = 1;
const STORE = 'manifest-log';

function requestResult<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class IndexedDbManifestLogStore implements ManifestLogStore {
  private db?: Promise<IDBDatabase>;

  /**
   * @param key one log per key: use the endpoint (a page uses its origin).
   * @param factory the IndexedDB factory (default: the global `indexedDB`).
   */
  constructor(
    private readonly key: string,
    private readonly factory: IDBFactory | undefined = globalThis.indexedDB,
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise<IDBDatabase>((resolve, reject) => {
      if (!this.factory) {
        reject(new ObscuraError('ERR_USAGE', 'IndexedDB is not available here; pass another manifestLog store'));
        return;
      }
      const req = this.factory.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new ObscuraError('ERR_UPSTREAM', 'the manifest log database is blocked by another tab'));
    }).catch((e) => {
      this.db = undefined;
      throw e instanceof ObscuraError ? e : new ObscuraError('ERR_UPSTREAM', `cannot open the manifest log in IndexedDB: ${(e as Error)?.message ?? e}`);
    });
    return this.db;
  }

  async load(): Promise<SeenManifestHead | undefined> {
    const db = await this.open();
    const v = (await requestResult(db.transaction(STORE, 'readonly').objectStore(STORE).get(this.key))) as unknown;
    if (v === undefined) return undefined;
    const seen = v as Partial<SeenManifestHead>;
    if (typeof seen.seq === 'number' && Number.isInteger(seen.seq) && seen.seq >= 0 && typeof seen.head === 'string' && /^[0-9a-f]{64}$/.test(seen.head)) {
      return { seq: seen.seq, head: seen.head };
    }
    throw new ObscuraError('ERR_MALFORMED', `the manifest log in IndexedDB (${DB_NAME}/${STORE}/${this.key}) is corrupted; it was left as it is`);
  }

  async save(seen: SeenManifestHead): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put({ seq: seen.seq, head: seen.head }, this.key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new ObscuraError('ERR_UPSTREAM', 'the manifest log write was aborted'));
    });
  }

  /** Forget what this key saw (a deliberate reset of the service's history). */
  async clear(): Promise<void> {
    const db = await this.open();
    await requestResult(db.transaction(STORE, 'readwrite').objectStore(STORE).delete(this.key));
  }
}
