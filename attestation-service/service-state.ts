/**
 * Everything the service must not lose, as one sealed snapshot: its keys (HPKE key seeds, the mesh CA,
 * the checkpoint key), the manifest chain with its manifests and checkpoints, the registered workers
 * and revocations, the inference secrets it holds and the model keys. Each change that a caller is
 * told about is durable first; concurrent changes share writes (each caller waits for a write that
 * started after its change).
 */
import { asRecord, decodeStrict, encodeDeterministic } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import type { ManifestChainEntry } from '../shared/manifest/chain.ts';
import type { SignedCheckpoint } from '../shared/manifest/checkpoint.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { isHpkeSuiteName, type HpkeSuiteName } from '../shared/protocol/hpke-suites.ts';
import type { ManifestStoreSnapshot } from './manifest-store.ts';
import { SealedStateError, type SealedStateFile } from './sealed-state.ts';
import type { StoredSecret } from './secret-store.ts';
import type { RegisteredWorker, WorkerRegistrySnapshot } from './worker-registry.ts';
import type { StoredModelKey } from './model-keys.ts';

export const STATE_FORMAT = 'obscura-as-state/1';

export interface ServiceKeyMaterial {
  hpkeSeeds: { suite: HpkeSuiteName; seed: Uint8Array }[];
  meshCa: { certificateDer: Uint8Array; privateKeyPkcs8: Uint8Array };
  checkpointKeyPkcs8: Uint8Array;
}

/**
 * Set once this service handed its state to another (state-handoff.ts): it then changes nothing more,
 * so two live copies cannot fork the chain. Never part of the state it hands over.
 */
export interface HandedOffRecord {
  at: number; // ms since epoch
  to: string; // the new service's endpoint, as its evidence bound it
  measurement: string; // hex, the new service's launch measurement
  targetEvidenceSha256: Uint8Array;
  manifestHead: Uint8Array; // the head the state was handed over at
}

export interface ServiceStateSnapshot {
  format: typeof STATE_FORMAT;
  keys: ServiceKeyMaterial;
  manifests: ManifestStoreSnapshot;
  workers: WorkerRegistrySnapshot;
  secrets: StoredSecret[];
  modelKeys: StoredModelKey[];
  handedOff?: HandedOffRecord;
}

export function encodeServiceState(s: ServiceStateSnapshot): Uint8Array {
  return encodeDeterministic(s);
}

const bytesOk = (v: unknown, length?: number): v is Uint8Array => v instanceof Uint8Array && (length === undefined || v.length === length);
const intOk = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const arr = (v: unknown, what: string): unknown[] => {
  if (!Array.isArray(v)) throw new ObscuraError('ERR_MALFORMED', `${what} must be an array`);
  return v;
};
function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new ObscuraError('ERR_MALFORMED', `${what} is not valid`);
}

function entryOf(v: unknown, i: number): ManifestChainEntry {
  const e = asRecord(v, `chain entry ${i}`);
  check(intOk(e.seq) && bytesOk(e.prev, 32) && bytesOk(e.manifestSha256, 32) && intOk(e.setAt) && typeof e.authorizedBy === 'string' && bytesOk(e.signature), `chain entry ${i}`);
  return { seq: e.seq, prev: e.prev, manifestSha256: e.manifestSha256, setAt: e.setAt, authorizedBy: e.authorizedBy, signature: e.signature };
}

function checkpointOf(v: unknown, i: number): SignedCheckpoint {
  const c = asRecord(v, `checkpoint ${i}`);
  check(intOk(c.seq) && bytesOk(c.head, 32) && intOk(c.setAt) && bytesOk(c.signature), `checkpoint ${i}`);
  return { seq: c.seq, head: c.head, setAt: c.setAt, signature: c.signature };
}

function workerOf(v: unknown, i: number): RegisteredWorker {
  const w = asRecord(v, `worker ${i}`);
  check(
    typeof w.workerId === 'string' && typeof w.certFingerprint === 'string' && bytesOk(w.hpkePublicKey) && typeof w.hpkeSuite === 'string' &&
      bytesOk(w.admittedUnder, 32) && typeof w.measurement === 'string' && typeof w.chipId === 'string' && typeof w.endpoint === 'string' &&
      intOk(w.admittedAt) && intOk(w.certExpiresAt) && typeof w.revoked === 'boolean',
    `worker ${i}`,
  );
  return w as unknown as RegisteredWorker;
}

function secretOf(v: unknown, i: number): StoredSecret {
  const s = asRecord(v, `secret ${i}`);
  check(bytesOk(s.sid, 16) && bytesOk(s.secret, 32) && bytesOk(s.manifestHead, 32) && intOk(s.expiresAt), `secret ${i}`);
  // Later heads its holder allowed (absent in states written before allowances existed).
  const allowed = s.allowedHeads === undefined ? [] : s.allowedHeads;
  check(Array.isArray(allowed) && allowed.every((h) => bytesOk(h, 32)), `secret ${i}`);
  return { sid: s.sid, secret: s.secret, manifestHead: s.manifestHead, expiresAt: s.expiresAt, allowedHeads: allowed as Uint8Array[] };
}

function handedOffOf(v: unknown): HandedOffRecord {
  const h = asRecord(v, 'handedOff');
  check(intOk(h.at) && typeof h.to === 'string' && typeof h.measurement === 'string' && bytesOk(h.targetEvidenceSha256, 32) && bytesOk(h.manifestHead, 32), 'handedOff');
  return { at: h.at, to: h.to, measurement: h.measurement, targetEvidenceSha256: h.targetEvidenceSha256, manifestHead: h.manifestHead };
}

function modelKeyOf(v: unknown, i: number): StoredModelKey {
  const m = asRecord(v, `model key ${i}`);
  check(typeof m.weightsDigest === 'string' && bytesOk(m.key, 32) && intOk(m.createdAt), `model key ${i}`);
  return { weightsDigest: m.weightsDigest, key: m.key, createdAt: m.createdAt };
}

/** Decode a snapshot that opened (so it is authentic); a shape error means a bug or a format change. */
export function decodeServiceState(bytes: Uint8Array, path: string): ServiceStateSnapshot {
  try {
    const m = asRecord(decodeStrict(bytes, 'service state'), 'service state');
    if (m.format !== STATE_FORMAT) throw new ObscuraError('ERR_MALFORMED', `state format ${String(m.format)} is not ${STATE_FORMAT}`);
    const k = asRecord(m.keys, 'keys');
    const ca = asRecord(k.meshCa, 'keys.meshCa');
    check(bytesOk(ca.certificateDer) && bytesOk(ca.privateKeyPkcs8) && bytesOk(k.checkpointKeyPkcs8), 'keys');
    const hpkeSeeds = arr(k.hpkeSeeds, 'keys.hpkeSeeds').map((v, i) => {
      const s = asRecord(v, `keys.hpkeSeeds[${i}]`);
      check(typeof s.suite === 'string' && isHpkeSuiteName(s.suite) && bytesOk(s.seed, 32), `keys.hpkeSeeds[${i}]`);
      return { suite: s.suite as HpkeSuiteName, seed: s.seed as Uint8Array };
    });
    const man = asRecord(m.manifests, 'manifests');
    const wk = asRecord(m.workers, 'workers');
    return {
      format: STATE_FORMAT,
      keys: { hpkeSeeds, meshCa: { certificateDer: ca.certificateDer, privateKeyPkcs8: ca.privateKeyPkcs8 }, checkpointKeyPkcs8: k.checkpointKeyPkcs8 },
      manifests: {
        entries: arr(man.entries, 'manifests.entries').map(entryOf),
        manifests: arr(man.manifests, 'manifests.manifests') as Manifest[], // re-validated on restore
        checkpoints: arr(man.checkpoints, 'manifests.checkpoints').map(checkpointOf),
      },
      workers: {
        workers: arr(wk.workers, 'workers.workers').map(workerOf),
        revokedIds: arr(wk.revokedIds, 'workers.revokedIds').map((v) => String(v)),
        revokedChips: arr(wk.revokedChips, 'workers.revokedChips').map((v) => String(v)),
      },
      secrets: arr(m.secrets, 'secrets').map(secretOf),
      modelKeys: arr(m.modelKeys, 'modelKeys').map(modelKeyOf),
      ...(m.handedOff === undefined ? {} : { handedOff: handedOffOf(m.handedOff) }),
    };
  } catch (cause) {
    if (cause instanceof SealedStateError) throw cause;
    throw new SealedStateError('corrupt', path, `${path} opened, but its content is not a service state this build reads (${(cause as Error).message})`, { cause });
  }
}

/**
 * Writes of the whole snapshot, coalesced: `persist()` resolves once a write that began after the call
 * has completed, so what the caller changed before calling is on disk.
 */
export class StateWriter {
  private requested = 0;
  private completed = 0;
  private inFlight?: Promise<void>;

  constructor(
    private readonly file: SealedStateFile,
    private readonly snapshot: () => ServiceStateSnapshot,
  ) {}

  /** Make the current state durable. */
  persist(): Promise<void> {
    return this.run();
  }

  /**
   * Write a state that is not yet the in-memory one (`pending`), and run `commit` (which makes it the
   * in-memory one) synchronously once that write is durable, before any other write can snapshot.
   */
  persistThenCommit(pending: (s: ServiceStateSnapshot) => ServiceStateSnapshot, commit: () => void): Promise<void> {
    return this.run({ pending, commit });
  }

  private async run(change?: { pending: (s: ServiceStateSnapshot) => ServiceStateSnapshot; commit: () => void }): Promise<void> {
    const mine = ++this.requested;
    for (;;) {
      if (this.inFlight) {
        await this.inFlight.catch(() => undefined);
        continue;
      }
      if (!change && this.completed >= mine) return;
      const target = this.requested;
      const bytes = encodeServiceState(change ? change.pending(this.snapshot()) : this.snapshot());
      const write = this.file.write(bytes).then(() => {
        this.completed = Math.max(this.completed, target);
        change?.commit();
      });
      this.inFlight = write.finally(() => (this.inFlight = undefined));
      await this.inFlight;
      if (change) return;
    }
  }
}
