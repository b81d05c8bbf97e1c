/**
 * Inference secrets the worker holds, in memory only, imported as non-extractable HKDF keys. A miss
 * asks the attestation service (one request per id at a time); expired secrets are dropped. When the
 * service says this worker is no longer attested (the manifest changed, or its certificate lapsed),
 * the worker registers again (once, shared by every request waiting) and asks again.
 */
import { sha256, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { LABEL_SECRET_TO_WORKER } from '../shared/protocol/constants.ts';
import { openSecret, type SealedSecret } from '../shared/protocol/inference-secret.ts';
import { importInferenceSecret } from '../shared/protocol/request-keys.ts';
import type { HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';

export interface SecretSource {
  fetchSecret(sid: Uint8Array): Promise<SealedSecret>;
}

interface Identity {
  hpke: HpkeKeyPair;
  context: Uint8Array;
}

interface Held {
  key: CryptoKey;
  expiresAt: number;
}

export class SecretCache {
  private readonly held = new Map<string, Held>();
  private readonly pending = new Map<string, Promise<Held>>();
  private identity?: Identity;

  private reattesting?: Promise<void>;

  constructor(
    private readonly source: SecretSource,
    private readonly now: () => number = Date.now,
    private readonly reattest?: () => Promise<void>,
  ) {}

  /** Set after each (re-)registration; secrets sealed to an older key are dropped with it. */
  async setIdentity(hpke: HpkeKeyPair | undefined): Promise<void> {
    this.held.clear();
    this.identity = hpke ? { hpke, context: await sha256(hpke.publicKey) } : undefined;
  }

  get attested(): boolean {
    return this.identity !== undefined;
  }

  async get(sid: Uint8Array): Promise<CryptoKey> {
    if (!this.identity) {
      throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this worker has not passed attestation, so it holds no secrets; the request was not opened');
    }
    const id = toHex(sid);
    const now = this.now();
    const held = this.held.get(id);
    if (held && held.expiresAt > now) return held.key;
    if (held) {
      this.held.delete(id);
      throw new ObscuraError('ERR_SECRET_EXPIRED', 'the inference secret has expired: exchange a new one');
    }
    let p = this.pending.get(id);
    if (!p) {
      p = this.load(sid).finally(() => this.pending.delete(id));
      this.pending.set(id, p);
    }
    return (await p).key;
  }

  /** The sealed secret and the identity it was asked for (so, sealed to). */
  private async fetch(sid: Uint8Array): Promise<{ sealed: SealedSecret; identity: Identity }> {
    const ask = async () => {
      const identity = this.identity;
      if (!identity) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this worker has not passed attestation, so it holds no secrets; the request was not opened');
      return { sealed: await this.source.fetchSecret(sid), identity };
    };
    try {
      return await ask();
    } catch (e) {
      if (!this.reattest || !(e instanceof ObscuraError) || e.code !== 'ERR_WORKER_NOT_ATTESTED') throw e;
      this.reattesting ??= this.reattest().finally(() => (this.reattesting = undefined));
      await this.reattesting;
      return ask();
    }
  }

  private async load(sid: Uint8Array): Promise<Held> {
    const { sealed, identity } = await this.fetch(sid);
    const secret = await openSecret({ sealed, recipientKey: identity.hpke.privateKey, label: LABEL_SECRET_TO_WORKER, context: identity.context });
    if (sealed.expiresAt <= this.now()) throw new ObscuraError('ERR_SECRET_EXPIRED', 'the inference secret has expired: exchange a new one');
    const entry = { key: await importInferenceSecret(secret), expiresAt: sealed.expiresAt };
    secret.fill(0);
    if (this.identity === identity) this.held.set(toHex(sid), entry);
    return entry;
  }
}
