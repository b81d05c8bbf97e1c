/**
 * What the admin commands (`obscura manifest`, `obscura worker`, `obscura model`) share: talking to the
 * attestation service directly, after verifying its evidence against the admin's own client policy
 * (with a fresh nonce), over a TLS connection whose key is the one that evidence attests; owner keys;
 * and the defaults of the local deployment.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Agent, request } from 'undici';
import { bufferOf, equalBytes, randomBytes, toHex } from '../../../../shared/bytes.ts';
import { encodeDeterministic } from '../../../../shared/cbor.ts';
import { ObscuraError } from '../../../../shared/errors.ts';
import { coreDigest } from '../../../../shared/protocol/attested-core.ts';
import { BUNDLE_CONTENT_TYPE } from '../../../../shared/protocol/constants.ts';
import { verifyBundle, type VerifiedBundle } from '../../../../shared/protocol/verify-bundle.ts';
import { fromWireErrorBytes } from '../../../../shared/protocol/wire-error.ts';
import type { Manifest } from '../../../../shared/manifest/schema.ts';
import { bundleVerificationOptions, parseClientPolicy, type ClientPolicy } from '../../../sdk/policy.ts';

export const DEFAULT_AS_URL = 'https://127.0.0.1:8443';

/** The flags every admin command takes, with the local deployment's defaults. */
export const ADMIN_OPTIONS = {
  as: { type: 'string' },
  ca: { type: 'string' },
  policy: { type: 'string' },
  'state-dir': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const ADMIN_USAGE = `  --as URL          the attestation service          OBSCURA_AS_URL     (${DEFAULT_AS_URL})
  --ca FILE         CA of its TLS certificate        OBSCURA_CA_CERT    (STATE-DIR/tls/ca.pem when present)
  --policy FILE     the admin's client policy: roots and the service measurement its evidence must
                    show                                                (STATE-DIR/client-policy.json)
  --state-dir DIR   the local deployment's state     OBSCURA_STATE_DIR  (.obscura)
  --json            one JSON object on stdout`;

export interface AdminSettings {
  asUrl: string;
  caPem?: string;
  policyPath: string;
  stateDir: string;
}

export function adminSettings(values: Record<string, unknown>): AdminSettings {
  const str = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const stateDir = resolve(str('state-dir') ?? process.env.OBSCURA_STATE_DIR ?? '.obscura');
  const caPath = str('ca') ?? process.env.OBSCURA_CA_CERT ?? (existsSync(join(stateDir, 'tls', 'ca.pem')) ? join(stateDir, 'tls', 'ca.pem') : undefined);
  return {
    asUrl: (str('as') ?? process.env.OBSCURA_AS_URL ?? DEFAULT_AS_URL).replace(/\/$/, ''),
    caPem: caPath ? readText(caPath, 'the CA certificate') : undefined,
    policyPath: str('policy') ?? join(stateDir, 'client-policy.json'),
    stateDir,
  };
}

export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ObscuraError('ERR_USAGE', `cannot read ${what} at ${path}`);
  }
}

export function readJsonFile(path: string, what: string): unknown {
  const text = readText(path, what);
  try {
    return JSON.parse(text);
  } catch {
    throw new ObscuraError('ERR_MALFORMED', `${what} at ${path} is not JSON`);
  }
}

export function loadPolicy(path: string): ClientPolicy {
  return parseClientPolicy(readJsonFile(path, 'the client policy'));
}

export interface OwnerSigningKey {
  privateKey: CryptoKey;
  publicKeyJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
}

/** An owner's ECDSA P-256 private key, as a JWK file (what `obscura up` keeps in owner-key.jwk). */
export async function loadOwnerKey(path: string): Promise<OwnerSigningKey> {
  const jwk = readJsonFile(path, 'the owner key') as JsonWebKey;
  if (jwk?.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new ObscuraError('ERR_MALFORMED', `${path} is not an ECDSA P-256 private key (JWK with kty EC, crv P-256, d, x, y)`);
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', d: jwk.d, x: jwk.x, y: jwk.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  } catch (cause) {
    throw new ObscuraError('ERR_MALFORMED', `${path} does not hold a valid P-256 private key`, { cause });
  }
  return { privateKey, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } };
}

/** The id under which `manifest` names this key as an owner (or the one asked for, if it does). */
export function ownerIdIn(manifest: Manifest, key: OwnerSigningKey, asked?: string): string {
  if (asked) return asked; // the service decides whether this id's key signed it
  const owner = manifest.owners.find((o) => o.publicKeyJwk.x === key.publicKeyJwk.x && o.publicKeyJwk.y === key.publicKeyJwk.y);
  if (!owner) throw new ObscuraError('ERR_POLICY_VIOLATION', 'this key is not an owner of the manifest that authorises the change (pass --owner ID to try anyway)');
  return owner.id;
}

const spkiSha256 = (raw: Buffer) => createHash('sha256').update(new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' })).digest();

export interface AttestedService {
  verified: VerifiedBundle;
  coreDigest: Uint8Array;
  bundleBytes: Uint8Array; // as served, so others can verify it offline
}

/** The attestation service, reached only after its evidence checked out, over its attested TLS key. */
export class AdminClient {
  private pinned?: Uint8Array;
  private lastSeen?: Uint8Array;
  private readonly agent: Agent;

  constructor(private readonly settings: AdminSettings) {
    this.agent = new Agent({
      connect: {
        ...(settings.caPem ? { ca: settings.caPem } : {}),
        checkServerIdentity: (host: string, cert: PeerCertificate) => {
          const err = checkServerIdentity(host, cert);
          if (err) return err;
          const seen = new Uint8Array(spkiSha256(cert.raw));
          this.lastSeen = seen;
          if (this.pinned && !equalBytes(seen, this.pinned)) {
            return new ObscuraError('ERR_VALUE_MISMATCH', `the TLS key of ${settings.asUrl} is not the one its evidence attests (${toHex(this.pinned).slice(0, 16)}…)`);
          }
          return undefined;
        },
      },
    });
  }

  get url(): string {
    return this.settings.asUrl;
  }

  /** Fetch a bundle made for a fresh nonce, verify it against `policy`, and pin the TLS key it attests. */
  async attest(policy: ClientPolicy, now = Date.now()): Promise<AttestedService> {
    const nonce = randomBytes(32);
    const res = await this.send('POST', '/v1/attestation', { body: encodeDeterministic({ nonce }), contentType: 'application/cbor', accept: BUNDLE_CONTENT_TYPE, beforeAttest: true });
    const verified = await verifyBundle(res.bytes, bundleVerificationOptions(policy, now, nonce));
    if (!this.lastSeen || !equalBytes(this.lastSeen, verified.core.tlsKeySha256)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', `the TLS key of ${this.settings.asUrl} is not the one its evidence attests: something is in between`);
    }
    this.pinned = verified.core.tlsKeySha256;
    return { verified, coreDigest: await coreDigest(verified.bundle.core), bundleBytes: res.bytes };
  }

  async getJson<T>(path: string): Promise<T> {
    return JSON.parse(new TextDecoder().decode((await this.send('GET', path)).bytes)) as T;
  }

  async sendJson<T>(method: 'PUT' | 'POST', path: string, value: unknown): Promise<T> {
    const res = await this.send(method, path, { body: new TextEncoder().encode(JSON.stringify(value)), contentType: 'application/json' });
    return JSON.parse(new TextDecoder().decode(res.bytes)) as T;
  }

  private async send(method: 'GET' | 'PUT' | 'POST', path: string, opts: { body?: Uint8Array; contentType?: string; accept?: string; beforeAttest?: boolean } = {}): Promise<{ status: number; bytes: Uint8Array }> {
    if (!opts.beforeAttest && !this.pinned) throw new ObscuraError('ERR_USAGE', 'verify the service (attest) before anything else');
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.settings.asUrl}${path}`, {
        method,
        dispatcher: this.agent,
        headers: { ...(opts.contentType ? { 'content-type': opts.contentType } : {}), ...(opts.accept ? { accept: opts.accept } : {}) },
        body: opts.body ? Buffer.from(bufferOf(opts.body)) : undefined,
      });
    } catch (cause) {
      if (cause instanceof ObscuraError) throw cause;
      const inner = (cause as { cause?: unknown }).cause;
      if (inner instanceof ObscuraError) throw inner;
      throw new ObscuraError('ERR_UPSTREAM', `cannot reach the attestation service at ${this.settings.asUrl} (${(cause as Error).message})`, { cause });
    }
    const bytes = new Uint8Array(await res.body.arrayBuffer());
    if (res.statusCode >= 300) throw fromWireErrorBytes(res.statusCode, bytes);
    return { status: res.statusCode, bytes };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
