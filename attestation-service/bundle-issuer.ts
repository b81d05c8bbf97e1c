/**
 * Builds attestation bundles: the attested core (keys, mesh CA, manifest head, times, optional client
 * nonce), evidence whose report_data is SHA-512 of the core, and the manifest history. The nonce-less
 * bundle is reused until it nears expiry or the manifest changes; nonce'd ones are made per request.
 */
import { toHex } from '../shared/bytes.ts';
import { encodeBundle } from '../shared/protocol/bundle.ts';
import { PROTOCOL_VERSION } from '../shared/protocol/constants.ts';
import { CHECKPOINT_KEY_BYTES, coreDigest, coreReportData, encodeAttestedCore, type AttestedCore } from '../shared/protocol/attested-core.ts';
import type { HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import type { ManifestStore } from './manifest-store.ts';

export const BUNDLE_LIFETIME_MS = 10 * 60_000;
/** 0x04 followed by zeros: the right size, but not a point on P-256. */
export const NO_CHECKPOINT_KEY: Uint8Array = new Uint8Array(CHECKPOINT_KEY_BYTES).fill(0, 1).fill(4, 0, 1);
const REFRESH_BEFORE_EXPIRY_MS = BUNDLE_LIFETIME_MS / 2;

export interface IssuedCore {
  core: AttestedCore;
  coreBytes: Uint8Array;
}

export class BundleIssuer {
  private cached?: { bytes: Uint8Array; expiresAt: number; head: string };
  private readonly issuedCores = new Map<string, IssuedCore>(); // core digest hex -> core

  constructor(
    private readonly opts: {
      tee: TeeProvider;
      manifests: ManifestStore;
      hpke: HpkeKeyPair[];
      tlsKeySha256: Uint8Array;
      meshCaSha256: Uint8Array;
      /** The public point that verifies manifest checkpoints; without one (issuers in tests that sign
       * no checkpoints), a placeholder that is not a curve point, so no checkpoint ever verifies. */
      checkpointKey?: Uint8Array;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  async bundle(nonce?: Uint8Array): Promise<Uint8Array> {
    const now = this.now();
    const head = toHex(this.opts.manifests.head);
    if (!nonce && this.cached && this.cached.head === head && this.cached.expiresAt - now > REFRESH_BEFORE_EXPIRY_MS) return this.cached.bytes;
    const core: AttestedCore = {
      v: PROTOCOL_VERSION,
      tlsKeySha256: this.opts.tlsKeySha256,
      hpke: this.opts.hpke.map((k) => ({ suite: k.suite, publicKey: k.publicKey })),
      meshCaSha256: this.opts.meshCaSha256,
      manifestHead: this.opts.manifests.head,
      checkpointKey: this.opts.checkpointKey ?? NO_CHECKPOINT_KEY,
      issuedAt: now,
      expiresAt: now + BUNDLE_LIFETIME_MS,
      ...(nonce ? { nonce } : {}),
    };
    const coreBytes = encodeAttestedCore(core);
    const evidence = await this.opts.tee.attest(await coreReportData(coreBytes));
    this.remember({ core, coreBytes }, toHex(await coreDigest(coreBytes)));
    const bytes = encodeBundle({
      v: PROTOCOL_VERSION,
      core: coreBytes,
      evidence,
      manifest: this.opts.manifests.currentEncoded(),
      chain: [...this.opts.manifests.chain],
    });
    if (!nonce) this.cached = { bytes, expiresAt: core.expiresAt, head };
    return bytes;
  }

  /** A core this service issued and that has not expired, by digest: secrets are sealed against one. */
  issuedCore(digestHex: string): IssuedCore | undefined {
    const c = this.issuedCores.get(digestHex);
    return c && c.core.expiresAt > this.now() ? c : undefined;
  }

  private remember(c: IssuedCore, digestHex: string): void {
    const now = this.now();
    for (const [d, old] of this.issuedCores) if (old.core.expiresAt <= now) this.issuedCores.delete(d);
    this.issuedCores.set(digestHex, c);
  }
}
