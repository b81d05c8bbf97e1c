/**
 * The simulated GPU's certificate chain, shaped like NVIDIA's Hopper device chain so the very same
 * verifier (shared/attestation/nvidia) accepts it, leaf first:
 *   GSP FMC LF (attestation key, P-384, digitalSignature, the DICE TcbInfo FWID extension 2.23.133.5.4.1)
 *   <- GSP BROM (CA) <- GH100 Provisioner ICA (CA) <- GH100 Identity (CA) <- Device Identity CA (root)
 * every certificate ecdsa-with-SHA384. Only the root differs from real hardware: a manifest must list
 * this local root explicitly, exactly as it lists NVIDIA's.
 *
 * Generated once per simulated machine (directory) and persisted there in one JSON file (mode 0600,
 * created atomically so that two processes starting together agree on one chain), with the root as
 * `nvidia-root.pem` beside it. Only the attestation key is kept: the CA keys are discarded once the
 * leaf is signed, so nothing can mint another certificate under this root.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { bufferOf, fromBase64Url, fromHex, randomBytes, toBase64Url, toHex, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { encodePem } from '../../shared/attestation/x509/pem.ts';
import { FWID_SHA384_BYTES, NVIDIA_GPU_CHAIN_CERTS, OID_NVIDIA_FWID_EXTENSION } from '../../shared/attestation/nvidia/index.ts';
import { loadOrCreatePersistedState, writeAtomic, type PersistedStateKind } from './persisted-state.ts';

export const SIM_GPU_STATE_FILE = 'nvidia-gpu-sim.json';
export const SIM_GPU_ROOT_PEM_FILE = 'nvidia-root.pem';
const STATE_FORMAT = 'obscura-nvidia-gpu-sim/1';
/** NVIDIA's device certificates never expire (notAfter 9999-12-31); the simulated ones do the same. */
const NOT_AFTER = new Date('9999-12-31T23:59:59Z');
/** Backdate notBefore so a clock a little behind the generator's still accepts fresh certificates. */
const BACKDATE_MS = 24 * 60 * 60 * 1000;
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
/** What the simulated GSP firmware "is": its FWID is SHA-384 of this label, the same on every machine. */
const SIM_FIRMWARE_LABEL = 'obscura simulated GH100 GSP FMC firmware 1';

const P384: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-384' };
const SIGNING = { name: 'ECDSA', hash: 'SHA-384' } as const;
const NAME_BASE = 'O=Obscura local simulation (not NVIDIA), C=US';

export interface SimulatedGpuChain {
  readonly dir: string;
  /** Leaf (attestation certificate) first, the root last: what the GPU driver hands out. */
  readonly chainDer: readonly Uint8Array[];
  readonly chainPem: string;
  /** The local root a manifest lists to accept this simulated GPU's evidence (DER and PEM). */
  readonly rootDer: Uint8Array;
  readonly rootPem: string;
  /** The attestation key (ECDSA P-384) the leaf certifies. */
  readonly attestationKey: CryptoKey;
  /** The leaf's FWID (48 bytes), which the GPU also reports in its opaque data. */
  readonly fwid: Uint8Array;
}

interface StoredGpuState {
  format: typeof STATE_FORMAT;
  certs: string[]; // base64url DER, leaf first
  leafPkcs8: string;
  fwid: string; // hex
}

/** The FWID of the simulated firmware (48 bytes). */
export function simulatedGpuFwid(): Uint8Array {
  return new Uint8Array(createHash('sha384').update(utf8(SIM_FIRMWARE_LABEL)).digest());
}

/**
 * Load the GPU chain persisted in `dir`, or generate and persist one. `dir` is created (mode 0700) if
 * missing. A corrupt state file is an error, never silently replaced: manifests pin its root.
 */
export async function loadOrCreateSimulatedGpuChain(dir: string): Promise<SimulatedGpuChain> {
  const path = join(dir, SIM_GPU_STATE_FILE);
  const state = await loadOrCreatePersistedState(path, GPU_CHAIN_STATE, generateState);
  const chain = await openState(dir, path, state);
  await writeAtomic(join(dir, SIM_GPU_ROOT_PEM_FILE), chain.rootPem);
  return chain;
}

/** The persisted chain: its format and the fields every start needs. */
const GPU_CHAIN_STATE: PersistedStateKind<StoredGpuState> = {
  what: `a simulated NVIDIA GPU chain (${STATE_FORMAT})`,
  isValid(value: unknown): value is StoredGpuState {
    const state = value as StoredGpuState | undefined;
    return !(
      state?.format !== STATE_FORMAT ||
      !Array.isArray(state.certs) ||
      state.certs.length !== NVIDIA_GPU_CHAIN_CERTS ||
      !state.certs.every((c) => typeof c === 'string') ||
      typeof state.leafPkcs8 !== 'string' ||
      typeof state.fwid !== 'string'
    );
  },
};

async function openState(dir: string, path: string, state: StoredGpuState): Promise<SimulatedGpuChain> {
  const chainDer = state.certs.map((c) => fromBase64Url(c));
  const fwid = fromHex(state.fwid);
  if (fwid.length !== FWID_SHA384_BYTES) throw new ObscuraError('ERR_MALFORMED', `${path}: the FWID is not ${FWID_SHA384_BYTES} bytes`);
  const attestationKey = await crypto.subtle.importKey('pkcs8', bufferOf(fromBase64Url(state.leafPkcs8)), P384, false, ['sign']);
  const rootDer = chainDer[chainDer.length - 1];
  return Object.freeze({
    dir,
    chainDer: Object.freeze(chainDer),
    chainPem: chainDer.map((d) => encodePem(d)).join(''),
    rootDer,
    rootPem: encodePem(rootDer),
    attestationKey,
    fwid,
  });
}

/** A positive serial number of `bytes` random bytes (the top bit cleared, as DER INTEGERs need). */
function serial(bytes = 9): string {
  const b = randomBytes(bytes);
  b[0] = (b[0] & 0x7f) | 0x01;
  return toHex(b);
}

/** DICE TcbInfo as NVIDIA writes it: SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, SEQUENCE { sha384, OCTET STRING } }. */
function fwidExtensionValue(leafSpki: Uint8Array, fwid: Uint8Array): ArrayBuffer {
  const spki = asn1js.fromBER(bufferOf(leafSpki));
  if (spki.offset === -1) throw new ObscuraError('ERR_MALFORMED', 'the attestation key is not a SubjectPublicKeyInfo');
  return new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }),
      spki.result,
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID_SHA384 }), new asn1js.OctetString({ valueHex: bufferOf(fwid) })] }),
    ],
  }).toBER(false);
}

async function generateState(): Promise<StoredGpuState> {
  x509.cryptoProvider.set(globalThis.crypto);
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  // Root, Identity, Provisioner ICA, BROM, leaf: the CA keys are not extractable and never stored.
  const caKeys: CryptoKeyPair[] = [];
  for (let i = 0; i < NVIDIA_GPU_CHAIN_CERTS - 1; i++) caKeys.push((await crypto.subtle.generateKey(P384, false, ['sign', 'verify'])) as CryptoKeyPair);
  const leafKeys = (await crypto.subtle.generateKey(P384, true, ['sign', 'verify'])) as CryptoKeyPair;
  const [rootKeys, identityKeys, icaKeys, bromKeys] = caKeys;
  const deviceSerial = serial(9).toUpperCase();
  const names = {
    root: `CN=Simulated NVIDIA Device Identity CA, ${NAME_BASE}`,
    identity: `CN=Simulated NVIDIA GH100 Identity, ${NAME_BASE}`,
    ica: `CN=Simulated NVIDIA GH100 Provisioner ICA 1, ${NAME_BASE}`,
    brom: `CN=Simulated GH100 A01 GSP BROM, ${NAME_BASE}, 2.5.4.5=${deviceSerial}`,
    leaf: `CN=Simulated GH100 A01 GSP FMC LF, ${NAME_BASE}, 2.5.4.5=${serial(20).toUpperCase()}`,
  };
  const caKeyUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

  const ca = async (subject: string, issuer: string, keys: CryptoKeyPair, issuerKeys: CryptoKeyPair, usage: number) =>
    x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer,
      notBefore,
      notAfter: NOT_AFTER,
      signingAlgorithm: SIGNING,
      publicKey: keys.publicKey,
      signingKey: issuerKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(issuerKeys.publicKey),
      ],
    });

  const root = await ca(names.root, names.root, rootKeys, rootKeys, caKeyUsage);
  const identity = await ca(names.identity, names.root, identityKeys, rootKeys, caKeyUsage);
  const ica = await ca(names.ica, names.identity, icaKeys, identityKeys, caKeyUsage);
  const brom = await ca(names.brom, names.ica, bromKeys, icaKeys, x509.KeyUsageFlags.keyCertSign);

  const fwid = simulatedGpuFwid();
  const leafSpki = new Uint8Array(await crypto.subtle.exportKey('spki', leafKeys.publicKey));
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: names.leaf,
    issuer: names.brom,
    notBefore,
    notAfter: NOT_AFTER,
    signingAlgorithm: SIGNING,
    publicKey: leafKeys.publicKey,
    signingKey: bromKeys.privateKey,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(bromKeys.publicKey),
      new x509.Extension(OID_NVIDIA_FWID_EXTENSION, false, fwidExtensionValue(leafSpki, fwid)),
    ],
  });

  const der = (c: x509.X509Certificate) => toBase64Url(new Uint8Array(c.rawData));
  return {
    format: STATE_FORMAT,
    certs: [der(leaf), der(brom), der(ica), der(identity), der(root)],
    leafPkcs8: toBase64Url(new Uint8Array(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey))),
    fwid: toHex(fwid),
  };
}
