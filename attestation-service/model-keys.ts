/**
 * Model keys: the AES-256 keys model weights are encrypted with at rest, one per weights digest. An
 * owner hands a key to the service HPKE-sealed to its attested key; the service releases it only to a
 * certified worker whose manifest lets the AI code it runs load that model, sealed to the worker's
 * attested HPKE key.
 */
import { equalBytes } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import type { Manifest } from '../shared/manifest/schema.ts';

export const MAX_MODEL_KEYS = 10_000;

export interface StoredModelKey {
  weightsDigest: string; // sha256:HEX of the plaintext weights, as the manifest names them
  key: Uint8Array; // 32 bytes
  createdAt: number;
}

export class ModelKeyStore {
  private readonly keys = new Map<string, StoredModelKey>();

  static restore(stored: readonly StoredModelKey[]): ModelKeyStore {
    const s = new ModelKeyStore();
    for (const k of stored) s.keys.set(k.weightsDigest, k);
    return s;
  }

  snapshot(): StoredModelKey[] {
    return [...this.keys.values()];
  }

  /** Store (or, as an owner may, replace) the key for some weights; returns what was there before. */
  put(k: StoredModelKey): { changed: boolean; previous?: StoredModelKey } {
    const existing = this.keys.get(k.weightsDigest);
    if (existing && equalBytes(existing.key, k.key)) return { changed: false, previous: existing };
    if (!existing && this.keys.size >= MAX_MODEL_KEYS) throw new ObscuraError('ERR_UPSTREAM', 'the service holds too many model keys');
    this.keys.set(k.weightsDigest, k);
    return { changed: true, previous: existing };
  }

  /** Put back what `put` replaced (its state could not be made durable). */
  undo(weightsDigest: string, previous: StoredModelKey | undefined): void {
    if (previous) this.keys.set(weightsDigest, previous);
    else this.keys.delete(weightsDigest);
  }

  has(weightsDigest: string): boolean {
    return this.keys.has(weightsDigest);
  }

  /** The key for `weightsDigest`, if `manifest` lets AI code `aiCode` load those weights. */
  releasable(manifest: Manifest, weightsDigest: string, aiCode: string): StoredModelKey {
    const model = manifest.models.find((m) => m.weightsDigest === weightsDigest && m.aiCode.includes(aiCode));
    if (!model || !manifest.aiCode.some((a) => a.name === aiCode)) {
      throw new ObscuraError('ERR_POLICY_VIOLATION', `the manifest does not let AI code "${aiCode}" load weights ${weightsDigest}`);
    }
    const k = this.keys.get(weightsDigest);
    if (!k) throw new ObscuraError('ERR_UNKNOWN_SECRET', `no key is held for weights ${weightsDigest}`);
    return k;
  }
}
