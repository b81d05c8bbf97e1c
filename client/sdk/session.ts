/**
 * A client's attested session with one Obscura endpoint: the verified bundle (re-fetched before it
 * ages out) and the current inference secret (exchanged by HPKE to the attested key, rotated before
 * it expires, re-exchanged when a worker does not hold it).
 */
import { bufferOf, randomBytes, toHex } from '../../shared/bytes.ts';
import { encodeDeterministic } from '../../shared/cbor.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { admissionWidenings } from '../../shared/manifest/admission-widening.ts';
import { coreDigest } from '../../shared/protocol/attested-core.ts';
import { BUNDLE_CONTENT_TYPE, INFERENCE_SECRET_BYTES, LABEL_SECRET_TO_SERVICE, SECRET_CONTENT_TYPE, SECRET_ID_BYTES } from '../../shared/protocol/constants.ts';
import { chooseHpkeSuite } from '../../shared/protocol/hpke-suites.ts';
import { encodeSealedSecret, sealSecret } from '../../shared/protocol/inference-secret.ts';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { deriveSecretAllowanceKey, encodeSecretAllowance, SECRET_ALLOWANCE_CONTENT_TYPE, signSecretAllowance } from '../../shared/protocol/secret-allowance.ts';
import { verifyBundle, type VerifiedBundle } from '../../shared/protocol/verify-bundle.ts';
import { fromWireError } from '../../shared/protocol/wire-error.ts';
import { checkAndRecordChain, forkError, MemoryManifestLogStore, type ManifestLogStore } from './manifest-log.ts';
import { bundleVerificationOptions, type ClientPolicy } from './policy.ts';

/** Re-fetch the bundle when less than this remains of its allowed age. */
const BUNDLE_REFRESH_MARGIN_MS = 60_000;
/** A liveness nonce's size. */
const BUNDLE_NONCE_BYTES = 32;
/** Rotate the secret when less than this remains of its lifetime. */
const SECRET_ROTATE_MARGIN_MS = 60_000;

export interface SessionOptions {
  endpoint: string; // the edge, e.g. https://obscura.example.com
  policy: ClientPolicy;
  fetch?: typeof fetch;
  manifestLog?: ManifestLogStore;
  now?: () => number;
  headers?: Record<string, string>; // e.g. the app's API key for the edge
  onWarning?: (message: string) => void;
}

export interface ActiveSecret {
  sid: Uint8Array;
  key: CryptoKey;
  expiresAt: number;
  /** The manifest head it was sealed under, and the key that signs allowances to follow later ones. */
  sealedUnder: Uint8Array;
  allowanceKey: CryptoKey;
}

export class ObscuraSession {
  private bundle?: { verified: VerifiedBundle; digest: Uint8Array; verifiedAt: number };
  private current?: ActiveSecret;
  private pendingSecret?: Promise<ActiveSecret>;
  private readonly fetchImpl: typeof fetch;
  private readonly log: ManifestLogStore;
  readonly endpoint: string;

  constructor(private readonly opts: SessionOptions) {
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.log = opts.manifestLog ?? new MemoryManifestLogStore();
    this.endpoint = opts.endpoint.replace(/\/$/, '');
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * The verified bundle; fetched and checked on first use and whenever it nears its age limit. With
   * `fresh`, a bundle made for a nonce of ours, past any cache (after the service said ours is stale).
   */
  async verified(opts: { fresh?: boolean } = {}): Promise<VerifiedBundle> {
    const now = this.now();
    const b = this.bundle;
    const ageLimit = Math.min(b ? b.verified.core.expiresAt : 0, b ? b.verified.core.issuedAt + this.opts.policy.maxBundleAgeMs : 0);
    if (b && !opts.fresh && ageLimit - now > BUNDLE_REFRESH_MARGIN_MS) return b.verified;
    const nonce = opts.fresh ? randomBytes(BUNDLE_NONCE_BYTES) : undefined;
    let res: Response;
    try {
      res = nonce
        ? await this.fetchImpl(`${this.endpoint}/v1/attestation`, {
            method: 'POST',
            headers: { accept: BUNDLE_CONTENT_TYPE, 'content-type': 'application/cbor', ...this.opts.headers },
            body: bufferOf(encodeDeterministic({ nonce })),
          })
        : await this.fetchImpl(`${this.endpoint}/v1/attestation`, { headers: { accept: BUNDLE_CONTENT_TYPE, ...this.opts.headers } });
    } catch (cause) {
      throw new ObscuraError('ERR_UPSTREAM', `cannot reach ${this.endpoint} for its attestation bundle`, { cause });
    }
    if (res.status !== 200) throw fromWireError(res.status, await res.json().catch(() => undefined));
    const bytes = new Uint8Array(await res.arrayBuffer());
    const p = this.opts.policy;
    const verified = await verifyBundle(bytes, bundleVerificationOptions(p, now, nonce));
    const fork = await checkAndRecordChain(this.log, verified.bundle.chain);
    if (!fork.extends) {
      if (p.onManifestFork === 'refuse') throw forkError(fork.message);
      this.opts.onWarning?.(fork.message);
    }
    if (b && toHex(b.verified.manifestHead) !== toHex(verified.manifestHead)) {
      // The manifest changed: a secret sealed under the old head is not released to workers admitted
      // under the new one, unless this client allows it to follow.
      const entry = verified.bundle.chain.length - 1;
      const followed = await this.followManifest(b.verified, verified);
      if (!followed) this.current = undefined;
      this.opts.onWarning?.(`the service's manifest changed (now entry ${entry}); ${followed ? 'it admits nothing new, so the current secret follows it' : 'a new secret will be exchanged under it'}`);
    }
    this.bundle = { verified, digest: await coreDigest(verified.bundle.core), verifiedAt: now };
    return verified;
  }

  /**
   * Let the current secret follow a manifest update that admits nothing new (policy permitting): the
   * service releases it under the new head only on our allowance, MAC'd with the secret.
   */
  private async followManifest(before: VerifiedBundle, after: VerifiedBundle): Promise<boolean> {
    const c = this.current;
    if (!c || this.opts.policy.secretFollowsManifest === 'never' || !before.manifest || !after.manifest) return false;
    const widenings = admissionWidenings(before.manifest, after.manifest);
    if (widenings.length) {
      this.opts.onWarning?.(`the new manifest admits more (${widenings.map((w) => `${w.path}: ${w.reason}`).join('; ')}): the current secret stays with the old one`);
      return false;
    }
    const allowance = await signSecretAllowance(c.allowanceKey, { sid: c.sid, fromHead: c.sealedUnder, toHead: after.manifestHead });
    try {
      const res = await this.fetchImpl(`${this.endpoint}/v1/secrets/allow`, {
        method: 'POST',
        headers: { 'content-type': SECRET_ALLOWANCE_CONTENT_TYPE, ...this.opts.headers },
        body: bufferOf(encodeSecretAllowance(allowance)),
      });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false; // a new secret is exchanged instead
    }
  }

  async secret(): Promise<ActiveSecret> {
    const c = this.current;
    if (c && c.expiresAt - this.now() > SECRET_ROTATE_MARGIN_MS) return c;
    this.pendingSecret ??= this.exchange().finally(() => (this.pendingSecret = undefined));
    return this.pendingSecret;
  }

  /**
   * A worker was not given our secret. When the manifest changed and the secret may follow the new one,
   * it now does (the allowance is made while checking a fresh bundle) and stays current; otherwise it
   * is dropped and the next call exchanges a new one.
   */
  async recoverSecret(sid: Uint8Array): Promise<void> {
    const c = this.current;
    if (!c || toHex(c.sid) !== toHex(sid)) return;
    const before = this.bundle?.verified.manifestHead;
    try {
      const after = await this.verified({ fresh: true });
      if (before && toHex(before) !== toHex(after.manifestHead) && this.current === c) return;
    } catch {
      // The exchange that follows reports what is wrong.
    }
    this.invalidateSecret(sid);
  }

  /** Drop the current secret (a worker did not hold it, or it expired); the next call exchanges anew. */
  invalidateSecret(sid?: Uint8Array): void {
    if (!sid || (this.current && toHex(this.current.sid) === toHex(sid))) this.current = undefined;
  }

  private async exchange(): Promise<ActiveSecret> {
    try {
      return await this.exchangeWith(await this.verified());
    } catch (e) {
      // The service no longer honours our bundle (it restarted, or the manifest changed since): once,
      // with a bundle made for us just now.
      if (!(e instanceof ObscuraError) || e.code !== 'ERR_VALUE_MISMATCH') throw e;
      return this.exchangeWith(await this.verified({ fresh: true }));
    }
  }

  private async exchangeWith(verified: VerifiedBundle): Promise<ActiveSecret> {
    const digest = await coreDigest(verified.bundle.core);
    const manifest = verified.manifest;
    if (!manifest) throw new ObscuraError('ERR_NO_WORKER', 'the service has no manifest yet, so no worker can be admitted');
    const core = verified.core;
    const suite = chooseHpkeSuite(core.hpke.map((h) => h.suite));
    const offer = core.hpke.find((h) => h.suite === suite)!;
    const sid = randomBytes(SECRET_ID_BYTES);
    const expiresAt = Math.min(this.now() + this.opts.policy.secretLifetimeMs, this.now() + manifest.limits.secretLifetimeMs);
    // The raw secret lives only while it is sealed and imported: from then on it is a non-extractable
    // CryptoKey (in browsers too), and the bytes are zeroed whatever happens.
    const secret = randomBytes(INFERENCE_SECRET_BYTES);
    let sealed: Awaited<ReturnType<typeof sealSecret>>;
    let key: CryptoKey;
    let allowanceKey: CryptoKey;
    try {
      sealed = await sealSecret({
        suite,
        recipientPublicKey: offer.publicKey,
        label: LABEL_SECRET_TO_SERVICE,
        context: digest,
        secret,
        meta: { sid, manifestHead: core.manifestHead, expiresAt },
      });
      key = await importInferenceSecret(secret);
      allowanceKey = await deriveSecretAllowanceKey(key);
    } finally {
      secret.fill(0);
    }
    const body = encodeDeterministic({ coreDigest: digest, sealed: encodeSealedSecret(sealed) });
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.endpoint}/v1/secrets`, { method: 'POST', headers: { 'content-type': SECRET_CONTENT_TYPE, ...this.opts.headers }, body: bufferOf(body) });
    } catch (cause) {
      throw new ObscuraError('ERR_UPSTREAM', `cannot reach ${this.endpoint} to exchange an inference secret`, { cause });
    }
    if (res.status !== 201) throw fromWireError(res.status, await res.json().catch(() => undefined));
    await res.body?.cancel();
    this.current = { sid, key, expiresAt, sealedUnder: core.manifestHead, allowanceKey };
    return this.current;
  }
}
