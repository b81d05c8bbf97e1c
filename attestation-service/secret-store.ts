/**
 * Inference secrets the service holds for release to certified workers: in memory and in the sealed
 * state, with their expiry and the manifest head they were sealed under. Bounded per store so no
 * client can exhaust memory.
 */
import { equalBytes, fromHex, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';

export const MAX_HELD_SECRETS = 100_000;
/** Later manifests one secret may follow: bounds what one client can make the service keep. */
export const MAX_ALLOWED_HEADS_PER_SECRET = 16;

export interface HeldSecret {
  secret: Uint8Array;
  manifestHead: Uint8Array;
  expiresAt: number;
  /** Later manifest heads the secret's holder allowed it to follow (secret-allowance.ts). */
  allowedHeads: Uint8Array[];
}

export interface StoredSecret extends HeldSecret {
  sid: Uint8Array;
}

export class SecretStore {
  private readonly secrets = new Map<string, HeldSecret>();

  constructor(private readonly now: () => number = Date.now) {}

  static restore(stored: readonly StoredSecret[], now: () => number = Date.now): SecretStore {
    const store = new SecretStore(now);
    const t = now();
    for (const s of stored) if (s.expiresAt > t) store.secrets.set(toHex(s.sid), { secret: s.secret, manifestHead: s.manifestHead, expiresAt: s.expiresAt, allowedHeads: [...s.allowedHeads] });
    return store;
  }

  /** What the sealed state keeps (expired secrets are dropped first). */
  snapshot(): StoredSecret[] {
    this.sweep();
    return [...this.secrets].map(([id, h]) => ({ sid: fromHex(id), ...h }));
  }

  put(sid: Uint8Array, held: HeldSecret): void {
    this.sweep();
    if (this.secrets.size >= MAX_HELD_SECRETS) throw new ObscuraError('ERR_UPSTREAM', 'the service holds too many secrets; try again later');
    const id = toHex(sid);
    if (this.secrets.has(id)) throw new ObscuraError('ERR_REPLAY', 'a secret with this id is already held');
    this.secrets.set(id, held);
  }

  /** Undo a put whose state could not be made durable. */
  remove(sid: Uint8Array): void {
    const id = toHex(sid);
    this.secrets.get(id)?.secret.fill(0);
    this.secrets.delete(id);
  }

  get(sid: Uint8Array): HeldSecret {
    const id = toHex(sid);
    const held = this.secrets.get(id);
    if (!held) throw new ObscuraError('ERR_UNKNOWN_SECRET', 'no inference secret with this id is held: exchange a new one');
    if (held.expiresAt <= this.now()) {
      this.secrets.delete(id);
      held.secret.fill(0);
      throw new ObscuraError('ERR_SECRET_EXPIRED', 'the inference secret has expired: exchange a new one');
    }
    return held;
  }

  /** Whether a worker admitted under `head` may have this secret. */
  static releasableUnder(held: HeldSecret, head: Uint8Array): boolean {
    return equalBytes(held.manifestHead, head) || held.allowedHeads.some((h) => equalBytes(h, head));
  }

  /**
   * Let the secret follow a later head (its holder's allowance was checked by the caller). Returns an
   * undo for when the change cannot be made durable; undefined when the head was allowed already.
   */
  allow(held: HeldSecret, head: Uint8Array): (() => void) | undefined {
    if (SecretStore.releasableUnder(held, head)) return undefined;
    if (held.allowedHeads.length >= MAX_ALLOWED_HEADS_PER_SECRET) {
      throw new ObscuraError('ERR_POLICY_VIOLATION', `a secret may follow at most ${MAX_ALLOWED_HEADS_PER_SECRET} later manifests: exchange a new one`);
    }
    held.allowedHeads.push(head);
    return () => {
      held.allowedHeads = held.allowedHeads.filter((h) => h !== head);
    };
  }

  get size(): number {
    return this.secrets.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, h] of this.secrets) {
      if (h.expiresAt <= now) {
        h.secret.fill(0);
        this.secrets.delete(id);
      }
    }
  }
}
