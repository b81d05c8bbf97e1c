/**
 * The attested core: what a service's evidence vouches for. Its report_data is SHA-512 of the core's
 * deterministic CBOR encoding (RFC 8949 §4.2.1), pinned by a golden test in attested-core.test.ts.
 */
import { sha256, sha512 } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { PROTOCOL_VERSION } from './constants.ts';

/** An uncompressed P-256 point: 0x04 || x || y. */
export const CHECKPOINT_KEY_BYTES = 65;

export interface HpkeOffer {
  suite: string;
  publicKey: Uint8Array;
}

export interface AttestedCore {
  v: number; // protocol version: clients refuse a lower one than they speak (no downgrade)
  tlsKeySha256: Uint8Array; // SHA-256 of the service's TLS SubjectPublicKeyInfo
  hpke: HpkeOffer[]; // the key(s) clients seal inference secrets to, in the service's preference order
  meshCaSha256: Uint8Array; // SHA-256 of the mesh CA certificate (DER) that certifies workers
  manifestHead: Uint8Array; // head of the manifest hash chain
  checkpointKey: Uint8Array; // ECDSA P-256 public key (65-byte uncompressed point) that signs manifest checkpoints
  issuedAt: number; // ms since epoch
  expiresAt: number; // ms since epoch
  nonce?: Uint8Array; // present only when a client asked for a fresh bundle
}

export function encodeAttestedCore(core: AttestedCore): Uint8Array {
  const value: Record<string, unknown> = {
    v: core.v,
    tlsKeySha256: core.tlsKeySha256,
    hpke: core.hpke.map((h) => ({ suite: h.suite, publicKey: h.publicKey })),
    meshCaSha256: core.meshCaSha256,
    manifestHead: core.manifestHead,
    checkpointKey: core.checkpointKey,
    issuedAt: core.issuedAt,
    expiresAt: core.expiresAt,
  };
  if (core.nonce) value.nonce = core.nonce;
  return encodeDeterministic(value);
}

export function parseAttestedCore(bytes: Uint8Array): AttestedCore {
  const m = asRecord(decodeStrict(bytes, 'attested core'), 'attested core');
  const v = fieldInt(m, 'v', 'attested core');
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `attested core version ${v} is not supported`);
  if (!Array.isArray(m.hpke) || m.hpke.length === 0) throw new ObscuraError('ERR_MALFORMED', 'attested core.hpke must list at least one key');
  const core: AttestedCore = {
    v,
    tlsKeySha256: fieldBytes(m, 'tlsKeySha256', 'attested core', 32),
    hpke: m.hpke.map((h, i) => {
      const r = asRecord(h, `attested core.hpke[${i}]`);
      return { suite: fieldString(r, 'suite', `attested core.hpke[${i}]`), publicKey: fieldBytes(r, 'publicKey', `attested core.hpke[${i}]`) };
    }),
    meshCaSha256: fieldBytes(m, 'meshCaSha256', 'attested core', 32),
    manifestHead: fieldBytes(m, 'manifestHead', 'attested core', 32),
    checkpointKey: fieldBytes(m, 'checkpointKey', 'attested core', CHECKPOINT_KEY_BYTES),
    issuedAt: fieldInt(m, 'issuedAt', 'attested core'),
    expiresAt: fieldInt(m, 'expiresAt', 'attested core'),
  };
  if (m.nonce !== undefined) core.nonce = fieldBytes(m, 'nonce', 'attested core');
  // Re-encoding must give the same bytes: a non-deterministic encoding could hash two ways.
  const again = encodeAttestedCore(core);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
    throw new ObscuraError('ERR_MALFORMED', 'attested core is not in deterministic CBOR encoding');
  }
  return core;
}

/** report_data binding: SHA-512 over the exact core bytes (64 bytes, the size of SNP/TDX report data). */
export function coreReportData(coreBytes: Uint8Array): Promise<Uint8Array> {
  return sha512(coreBytes);
}

/** The digest HPKE `info` binds a secret to. */
export function coreDigest(coreBytes: Uint8Array): Promise<Uint8Array> {
  return sha256(coreBytes);
}
