/**
 * The simulated TDX machine's key hierarchy, shaped like Intel's so the very same verifier
 * (shared/attestation/tdx) accepts it; every key ECDSA P-256, every signature ecdsa-with-SHA256:
 *   "Intel SGX Root CA" (local, self-signed; CA, pathLen 1)
 *     -> "Intel SGX PCK Platform CA" (CA, pathLen 0) -> "Intel SGX PCK Certificate" (the platform's
 *        PCK leaf, with Intel's SGX extensions 1.2.840.113741.1.13.1: PPID, TCB, PCE ID, FMSPC, SGX
 *        type, platform instance ID, configuration)
 *     -> "Intel SGX TCB Signing" (signs TCB info and QE identity)
 * plus the root CA's CRL and the Quoting Enclave's attestation key. The common names are Intel's (the
 * verifier checks them); the organisation says it is a local simulation, and only the root differs
 * from real hardware: a manifest must list this local root explicitly, exactly as it lists Intel's.
 *
 * Generated once per simulated machine (directory) and persisted there in one JSON file (mode 0600,
 * created atomically so that two processes starting together agree on one chain), with the root as
 * `tdx-root.pem` beside it. The root's private key is discarded once it has signed the two
 * certificates under it and its CRL (which is therefore issued for the root's whole lifetime); the PCK
 * CA and TCB Signing keys are kept, as Intel's PCS keeps them, to issue fresh PCK CRLs and collateral.
 */
import 'reflect-metadata';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { bufferOf, fromBase64Url, fromHex, randomBytes, toBase64Url, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { encodePem } from '../../shared/attestation/x509/pem.ts';
import { SGX_EXTENSIONS_OID, SGX_TCB_COMPONENT_COUNT } from '../../shared/attestation/tdx/pck-extensions.ts';
import { loadOrCreatePersistedState, writeAtomic, type PersistedStateKind } from './persisted-state.ts';

export const SIM_TDX_STATE_FILE = 'tdx-sim.json';
export const SIM_TDX_ROOT_PEM_FILE = 'tdx-root.pem';
const STATE_FORMAT = 'obscura-tdx-sim/1';
const CA_VALIDITY_YEARS = 25;
/** Intel issues PCK and TCB Signing certificates for about 7 years. */
const LEAF_VALIDITY_YEARS = 7;
/** Backdate notBefore so a clock a little behind the generator's still accepts fresh certificates. */
export const SIM_TDX_BACKDATE_MS = 24 * 60 * 60 * 1000;
const YEAR_MS = 365.25 * 24 * 3600 * 1000;

const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const NAME_BASE = 'O=Obscura local simulation (not Intel), C=US';
const NAMES = {
  root: `CN=Intel SGX Root CA, ${NAME_BASE}`,
  pckCa: `CN=Intel SGX PCK Platform CA, ${NAME_BASE}`,
  pckLeaf: `CN=Intel SGX PCK Certificate, ${NAME_BASE}`,
  tcbSigning: `CN=Intel SGX TCB Signing, ${NAME_BASE}`,
} as const;

/** The simulated platform's TCB as its PCK certificate states it (a Sapphire Rapids-like platform). */
export const SIM_TDX_PLATFORM = Object.freeze({
  /** Not a real FMSPC: the simulated TCB info is issued for this one alone. */
  fmspc: fromHex('90c06f0000ff'),
  pceId: fromHex('0000'),
  sgxTcbComponents: Object.freeze([3, 3, 2, 2, 2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]) as readonly number[],
  pceSvn: 13,
  /** Scalable (Intel's enumeration): what TDX platforms report. */
  sgxType: 1,
});

export interface SimulatedTdxChain {
  readonly dir: string;
  readonly rootDer: Uint8Array;
  /** The local root a manifest lists to accept this simulated machine's TDX evidence. */
  readonly rootPem: string;
  readonly pckCaDer: Uint8Array;
  readonly pckLeafDer: Uint8Array;
  readonly tcbSigningDer: Uint8Array;
  readonly rootCrlDer: Uint8Array;
  /** Leaf, PCK CA, root: what the Quoting Enclave embeds in its quotes (certification data type 5). */
  readonly pckChainPem: string;
  /** 16 random bytes fixed per machine: the PPID the PCK certificate carries. */
  readonly ppid: Uint8Array;
  /** 16 random bytes fixed per machine: the QE ID in the quote header's user data. */
  readonly qeId: Uint8Array;
  readonly pckCaKey: CryptoKey;
  readonly pckLeafKey: CryptoKey;
  readonly tcbSigningKey: CryptoKey;
  readonly attestationKey: CryptoKeyPair;
}

interface StoredTdxState {
  format: typeof STATE_FORMAT;
  certs: { root: string; pckCa: string; pckLeaf: string; tcbSigning: string }; // base64url DER
  rootCrl: string;
  keys: { pckCa: string; pckLeaf: string; tcbSigning: string; attestation: string }; // base64url PKCS#8
  attestationPublic: string; // base64url SPKI
  ppid: string; // hex
  qeId: string; // hex
}

/**
 * Load the chain persisted in `dir`, or generate and persist one. `dir` is created (mode 0700) if
 * missing. A corrupt state file is an error, never silently replaced: manifests pin its root.
 */
export async function loadOrCreateSimulatedTdxChain(dir: string): Promise<SimulatedTdxChain> {
  const path = join(dir, SIM_TDX_STATE_FILE);
  const state = await loadOrCreatePersistedState(path, TDX_CHAIN_STATE, generateState);
  const chain = await openState(dir, path, state);
  await writeAtomic(join(dir, SIM_TDX_ROOT_PEM_FILE), chain.rootPem);
  return chain;
}

/** The persisted chain: its format and the fields every start needs. */
const TDX_CHAIN_STATE: PersistedStateKind<StoredTdxState> = {
  what: `a simulated TDX chain (${STATE_FORMAT})`,
  isValid(value: unknown): value is StoredTdxState {
    const state = value as StoredTdxState | undefined;
    const strings = (o: unknown, keys: string[]) => typeof o === 'object' && o !== null && keys.every((k) => typeof (o as Record<string, unknown>)[k] === 'string');
    return !(
      state?.format !== STATE_FORMAT ||
      !strings(state.certs, ['root', 'pckCa', 'pckLeaf', 'tcbSigning']) ||
      !strings(state.keys, ['pckCa', 'pckLeaf', 'tcbSigning', 'attestation']) ||
      !strings(state, ['rootCrl', 'attestationPublic', 'ppid', 'qeId'])
    );
  },
};

async function openState(dir: string, path: string, state: StoredTdxState): Promise<SimulatedTdxChain> {
  const der = (b64: string) => fromBase64Url(b64);
  const privateKey = (b64: string) => crypto.subtle.importKey('pkcs8', bufferOf(der(b64)), P256, false, ['sign']);
  const ppid = fromHex(state.ppid);
  const qeId = fromHex(state.qeId);
  if (ppid.length !== 16 || qeId.length !== 16) throw new ObscuraError('ERR_MALFORMED', `${path}: ppid or qeId is not 16 bytes`);
  const rootDer = der(state.certs.root);
  const pckCaDer = der(state.certs.pckCa);
  const pckLeafDer = der(state.certs.pckLeaf);
  return Object.freeze({
    dir,
    rootDer,
    rootPem: encodePem(rootDer),
    pckCaDer,
    pckLeafDer,
    tcbSigningDer: der(state.certs.tcbSigning),
    rootCrlDer: der(state.rootCrl),
    pckChainPem: encodePem(pckLeafDer) + encodePem(pckCaDer) + encodePem(rootDer),
    ppid,
    qeId,
    pckCaKey: await privateKey(state.keys.pckCa),
    pckLeafKey: await privateKey(state.keys.pckLeaf),
    tcbSigningKey: await privateKey(state.keys.tcbSigning),
    attestationKey: {
      privateKey: await privateKey(state.keys.attestation),
      publicKey: await crypto.subtle.importKey('spki', bufferOf(der(state.attestationPublic)), P256, true, ['verify']),
    },
  });
}

/** A positive serial number of `bytes` random bytes (the top bit cleared, as DER INTEGERs need). */
function serial(bytes = 20): string {
  const b = randomBytes(bytes);
  b[0] = (b[0] & 0x7f) | 0x01;
  return toHex(b);
}

function member(oid: string, value: asn1js.AsnType): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), value] });
}

/** The SGX extension's value (DER) as Intel's PCK certificates carry it, for a Platform CA leaf. */
export function simulatedPckExtensionValue(ppid: Uint8Array, platformInstanceId: Uint8Array): ArrayBuffer {
  const p = SIM_TDX_PLATFORM;
  if (p.sgxTcbComponents.length !== SGX_TCB_COMPONENT_COUNT) throw new ObscuraError('ERR_USAGE', 'the simulated SGX TCB needs 16 components');
  const oid = (suffix: string) => `${SGX_EXTENSIONS_OID}.${suffix}`;
  const octets = (bytes: Uint8Array) => new asn1js.OctetString({ valueHex: bufferOf(bytes) });
  // CPUSVN: the SGX TCB components as Intel derives them for this CPU generation (one byte each).
  const cpuSvn = Uint8Array.from(p.sgxTcbComponents);
  const tcb = new asn1js.Sequence({
    value: [
      ...p.sgxTcbComponents.map((svn, i) => member(oid(`2.${i + 1}`), new asn1js.Integer({ value: svn }))),
      member(oid('2.17'), new asn1js.Integer({ value: p.pceSvn })),
      member(oid('2.18'), octets(cpuSvn)),
    ],
  });
  const configuration = new asn1js.Sequence({
    value: [
      member(oid('7.1'), new asn1js.Boolean({ value: false })), // dynamicPlatform
      member(oid('7.2'), new asn1js.Boolean({ value: true })), // cachedKeys
      member(oid('7.3'), new asn1js.Boolean({ value: true })), // SMTEnabled
    ],
  });
  return new asn1js.Sequence({
    value: [
      member(oid('1'), octets(ppid)),
      member(oid('2'), tcb),
      member(oid('3'), octets(p.pceId)),
      member(oid('4'), octets(p.fmspc)),
      member(oid('5'), new asn1js.Enumerated({ value: p.sgxType })),
      member(oid('6'), octets(platformInstanceId)),
      member(oid('7'), configuration),
    ],
  }).toBER(false);
}

async function generateState(): Promise<StoredTdxState> {
  x509.cryptoProvider.set(globalThis.crypto);
  const now = Date.now();
  const notBefore = new Date(now - SIM_TDX_BACKDATE_MS);
  const caNotAfter = new Date(now + CA_VALIDITY_YEARS * YEAR_MS);
  const leafNotAfter = new Date(now + LEAF_VALIDITY_YEARS * YEAR_MS);
  // The root's key is not extractable and never stored.
  const rootKeys = (await crypto.subtle.generateKey(P256, false, ['sign', 'verify'])) as CryptoKeyPair;
  const gen = async () => (await crypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pckCaKeys = await gen();
  const pckLeafKeys = await gen();
  const tcbSigningKeys = await gen();
  const attestationKeys = await gen();
  const ppid = randomBytes(16);
  const caUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  const leafUsage = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation;

  const issue = async (args: {
    subject: string;
    issuer: string;
    keys: CryptoKeyPair;
    issuerKeys: CryptoKeyPair;
    notAfter: Date;
    ca?: number; // pathLen
    extra?: x509.Extension[];
  }) =>
    x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: args.subject,
      issuer: args.issuer,
      notBefore,
      notAfter: args.notAfter,
      signingAlgorithm: SIGNING,
      publicKey: args.keys.publicKey,
      signingKey: args.issuerKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(args.ca !== undefined, args.ca, true),
        new x509.KeyUsagesExtension(args.ca !== undefined ? caUsage : leafUsage, true),
        await x509.SubjectKeyIdentifierExtension.create(args.keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(args.issuerKeys.publicKey),
        ...(args.extra ?? []),
      ],
    });

  const root = await issue({ subject: NAMES.root, issuer: NAMES.root, keys: rootKeys, issuerKeys: rootKeys, notAfter: caNotAfter, ca: 1 });
  const pckCa = await issue({ subject: NAMES.pckCa, issuer: NAMES.root, keys: pckCaKeys, issuerKeys: rootKeys, notAfter: caNotAfter, ca: 0 });
  const tcbSigning = await issue({ subject: NAMES.tcbSigning, issuer: NAMES.root, keys: tcbSigningKeys, issuerKeys: rootKeys, notAfter: leafNotAfter });
  const pckLeaf = await issue({
    subject: NAMES.pckLeaf,
    issuer: NAMES.pckCa,
    keys: pckLeafKeys,
    issuerKeys: pckCaKeys,
    notAfter: leafNotAfter,
    extra: [new x509.Extension(SGX_EXTENSIONS_OID, false, simulatedPckExtensionValue(ppid, randomBytes(16)))],
  });
  const rootCrl = await x509.X509CrlGenerator.create({
    issuer: root.subject,
    thisUpdate: notBefore,
    nextUpdate: caNotAfter,
    signingAlgorithm: SIGNING,
    signingKey: rootKeys.privateKey,
  });

  const b64 = (bytes: ArrayBuffer) => toBase64Url(new Uint8Array(bytes));
  const pkcs8 = async (keys: CryptoKeyPair) => b64((await crypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer);
  return {
    format: STATE_FORMAT,
    certs: { root: b64(root.rawData), pckCa: b64(pckCa.rawData), pckLeaf: b64(pckLeaf.rawData), tcbSigning: b64(tcbSigning.rawData) },
    rootCrl: b64(rootCrl.rawData),
    keys: { pckCa: await pkcs8(pckCaKeys), pckLeaf: await pkcs8(pckLeafKeys), tcbSigning: await pkcs8(tcbSigningKeys), attestation: await pkcs8(attestationKeys) },
    attestationPublic: b64((await crypto.subtle.exportKey('spki', attestationKeys.publicKey)) as ArrayBuffer),
    ppid: toHex(ppid),
    qeId: toHex(randomBytes(16)),
  };
}
