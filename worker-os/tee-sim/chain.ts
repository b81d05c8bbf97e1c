/**
 * The simulated TEE's key hierarchy, shaped like AMD's so the very same verifier accepts it:
 *   ARK  self-signed RSA-4096, RSASSA-PSS SHA-384 salt 48, CA, keyCertSign + cRLSign
 *   ASK  RSA-4096 signed by the ARK (RSA-PSS), CA with pathLen 0, keyCertSign
 *   VCEK EC P-384 signed by the ASK (RSA-PSS), serial 0, carrying AMD's VCEK extensions
 *        (1.3.6.1.4.1.3704.1.*: struct version, product name, TCB SPLs, hwID = CHIP_ID)
 * Only the root differs from real hardware: a policy must pin this local ARK explicitly.
 *
 * Generated once per directory (RSA-4096 key generation takes seconds) and persisted there in one
 * JSON file (mode 0600, created atomically so that two processes starting together agree on one
 * chain). The ARK's private key is discarded once the ASK is signed: nothing can mint another ASK.
 * VCEKs are issued per (product line, TCB) on demand, as AMD's KDS does, and kept in the same file.
 */
import 'reflect-metadata';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bufferOf, fromBase64, fromHex, randomBytes, toBase64Url, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { loadOrCreatePersistedState, readPersistedState, writeAtomic, type PersistedStateKind } from './persisted-state.ts';
import { encodePem } from '../../shared/attestation/x509/pem.ts';
import { pkijsEngine } from '../../shared/attestation/x509/engine.ts';
import { AMD_KDS_OID, TURIN_HWID_BYTES } from '../../shared/attestation/sev-snp/vcek-extensions.ts';
import { CHIP_ID_BYTES, REPORT_ID_BYTES } from '../../shared/attestation/sev-snp/report.ts';
import type { SnpProductLine } from '../../shared/attestation/sev-snp/product.ts';
import type { TcbParts } from '../../shared/attestation/sev-snp/tcb.ts';

export const SIM_STATE_FILE = 'sev-snp-sim.json';
export const SIM_ARK_PEM_FILE = 'ark.pem';
const STATE_FORMAT = 'obscura-sev-snp-sim/1';
const RSA_MODULUS_BITS = 4096;
const PSS_SALT_BYTES = 48;
const CA_VALIDITY_YEARS = 25;
const VCEK_VALIDITY_YEARS = 7;
/** Backdate notBefore so a clock a little behind the generator's still accepts fresh certificates. */
const BACKDATE_MS = 24 * 60 * 60 * 1000;

const RSA_PSS_KEY: RsaHashedKeyGenParams = {
  name: 'RSA-PSS',
  hash: 'SHA-384',
  modulusLength: RSA_MODULUS_BITS,
  publicExponent: new Uint8Array([1, 0, 1]),
};
const PSS_SIGNING = { name: 'RSA-PSS', hash: 'SHA-384', saltLength: PSS_SALT_BYTES } as const;

/** Product names as AMD's KDS writes them in VCEKs. */
export const SIM_PRODUCT_NAME: Readonly<Record<SnpProductLine, string>> = Object.freeze({
  Milan: 'Milan-B0',
  Genoa: 'Genoa',
  Turin: 'Turin-B0',
});

/** Default SPLs per product line (plausible current values; any may be overridden). */
export const SIM_DEFAULT_TCB: Readonly<Record<SnpProductLine, TcbParts>> = Object.freeze({
  Milan: Object.freeze({ bootloader: 4, tee: 0, snp: 23, microcode: 213 }),
  Genoa: Object.freeze({ bootloader: 10, tee: 0, snp: 23, microcode: 84 }),
  Turin: Object.freeze({ fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 73 }),
});

const NAME_BASE = 'OU=Simulated TEE, C=US, O=Obscura local simulation (not AMD)';

export type SimulatedSigningKey = 'vcek' | 'vlek';

/** The cspId a simulated VLEK carries (a real one names the cloud provider it was loaded for). */
export const SIM_VLEK_CSP_ID = 'obscura-local-simulation';

export interface SimulatedVcek {
  /** 'vlek': a VLEK (cspId, no hwID) signed by the same local ASK, which then plays the ASVK. */
  readonly kind: SimulatedSigningKey;
  readonly productLine: SnpProductLine;
  readonly tcb: TcbParts;
  readonly der: Uint8Array;
  readonly privateKey: CryptoKey;
}

export interface SimulatedChain {
  readonly dir: string;
  readonly arkDer: Uint8Array;
  readonly arkPem: string;
  readonly askDer: Uint8Array;
  /** 64 random bytes fixed per directory: the simulated chip's CHIP_ID. */
  readonly chipId: Uint8Array;
  /** 32 random bytes fixed per directory: the simulated guest's REPORT_ID. */
  readonly reportId: Uint8Array;
  /** The VCEK (or VLEK) for (productLine, tcb), issued and persisted on first request. */
  vcek(productLine: SnpProductLine, tcb: TcbParts, kind?: SimulatedSigningKey): Promise<SimulatedVcek>;
}

interface StoredVcek {
  kind?: SimulatedSigningKey;
  productLine: SnpProductLine;
  tcb: TcbParts;
  der: string;
  pkcs8: string;
}

interface StoredState {
  format: typeof STATE_FORMAT;
  ark: string;
  ask: string;
  askPkcs8: string;
  chipId: string;
  reportId: string;
  vceks: Record<string, StoredVcek>;
}

const b64 = (bytes: Uint8Array | ArrayBuffer) => toBase64Url(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
const unb64 = (text: string) => fromBase64(text.replace(/-/g, '+').replace(/_/g, '/'));

function vcekKey(kind: SimulatedSigningKey, productLine: SnpProductLine, tcb: TcbParts): string {
  return `${kind === 'vlek' ? 'vlek:' : ''}${productLine}:${tcb.fmc ?? '-'}.${tcb.bootloader}.${tcb.tee}.${tcb.snp}.${tcb.microcode}`;
}

/**
 * Load the chain persisted in `dir`, or generate and persist one. `dir` is created (mode 0700) if
 * missing. A corrupt state file is an error, never silently replaced: policies pin its ARK.
 */
export async function loadOrCreateSimulatedChain(dir: string): Promise<SimulatedChain> {
  const path = join(dir, SIM_STATE_FILE);
  const state = await loadOrCreatePersistedState(path, SNP_CHAIN_STATE, generateState);
  const chain = await openState(dir, path, state);
  await writeAtomic(join(dir, SIM_ARK_PEM_FILE), chain.arkPem);
  return chain;
}

/** The persisted chain: its format and the fields every start needs. */
const SNP_CHAIN_STATE: PersistedStateKind<StoredState> = {
  what: `a simulated SEV-SNP chain (${STATE_FORMAT})`,
  isValid(value: unknown): value is StoredState {
    const state = value as StoredState | undefined;
    return !(
      state?.format !== STATE_FORMAT ||
      typeof state.ark !== 'string' ||
      typeof state.ask !== 'string' ||
      typeof state.askPkcs8 !== 'string' ||
      typeof state.chipId !== 'string' ||
      typeof state.reportId !== 'string' ||
      typeof state.vceks !== 'object'
    );
  },
};

function provider(): void {
  x509.cryptoProvider.set(globalThis.crypto);
}

async function generateState(): Promise<StoredState> {
  provider();
  const now = Date.now();
  const notBefore = new Date(now - BACKDATE_MS);
  const caNotAfter = new Date(now + CA_VALIDITY_YEARS * 365.25 * 24 * 3600 * 1000);
  const arkKeys = (await crypto.subtle.generateKey(RSA_PSS_KEY, false, ['sign', 'verify'])) as CryptoKeyPair;
  const askKeys = (await crypto.subtle.generateKey(RSA_PSS_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
  const arkName = `${NAME_BASE}, CN=ARK-SIM`;
  const askName = `${NAME_BASE}, CN=SEV-SIM`;
  const ark = await x509.X509CertificateGenerator.create({
    serialNumber: '010000',
    subject: arkName,
    issuer: arkName,
    notBefore,
    notAfter: caNotAfter,
    signingAlgorithm: PSS_SIGNING,
    publicKey: arkKeys.publicKey,
    signingKey: arkKeys.privateKey,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(arkKeys.publicKey),
      new x509.BasicConstraintsExtension(true, undefined, true),
    ],
  });
  const ask = await x509.X509CertificateGenerator.create({
    serialNumber: '010001',
    subject: askName,
    issuer: arkName,
    notBefore,
    notAfter: caNotAfter,
    signingAlgorithm: PSS_SIGNING,
    publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey,
    extensions: [
      await x509.SubjectKeyIdentifierExtension.create(askKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(arkKeys.publicKey),
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return {
    format: STATE_FORMAT,
    ark: b64(ark.rawData),
    ask: b64(ask.rawData),
    askPkcs8: b64(await crypto.subtle.exportKey('pkcs8', askKeys.privateKey)),
    chipId: toHex(randomBytes(CHIP_ID_BYTES)),
    reportId: toHex(randomBytes(REPORT_ID_BYTES)),
    vceks: {},
  };
}

async function openState(dir: string, path: string, state: StoredState): Promise<SimulatedChain> {
  const arkDer = unb64(state.ark);
  const askDer = unb64(state.ask);
  const chipId = fromHex(state.chipId);
  const reportId = fromHex(state.reportId);
  if (chipId.length !== CHIP_ID_BYTES || reportId.length !== REPORT_ID_BYTES) {
    throw new ObscuraError('ERR_MALFORMED', `${path}: chipId or reportId has the wrong length`);
  }
  const askPrivateKey = await crypto.subtle.importKey('pkcs8', bufferOf(unb64(state.askPkcs8)), { name: 'RSA-PSS', hash: 'SHA-384' }, false, ['sign']);
  const issued = new Map<string, Promise<SimulatedVcek>>();

  const load = async (stored: StoredVcek): Promise<SimulatedVcek> => ({
    kind: stored.kind ?? 'vcek',
    productLine: stored.productLine,
    tcb: Object.freeze({ ...stored.tcb }),
    der: unb64(stored.der),
    privateKey: await crypto.subtle.importKey('pkcs8', bufferOf(unb64(stored.pkcs8)), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']),
  });

  const vcek = (productLine: SnpProductLine, tcb: TcbParts, kind: SimulatedSigningKey = 'vcek'): Promise<SimulatedVcek> => {
    if (kind !== 'vcek' && kind !== 'vlek') throw new ObscuraError('ERR_USAGE', `unknown endorsement key kind ${String(kind)}`);
    if (!(productLine in SIM_PRODUCT_NAME)) throw new ObscuraError('ERR_USAGE', `unknown product line ${productLine}`);
    if ((productLine === 'Turin') !== (tcb.fmc !== undefined)) {
      throw new ObscuraError('ERR_USAGE', 'a TCB has an fmc SPL on Turin and only there');
    }
    const key = vcekKey(kind, productLine, tcb);
    let pending = issued.get(key);
    if (!pending) {
      pending = (async () => {
        const latest = (await readPersistedState(path, SNP_CHAIN_STATE)) ?? state;
        const stored = latest.vceks[key] ?? state.vceks[key];
        if (stored) return load(stored);
        const fresh = await issueVcek({ kind, productLine, tcb, askDer, askPrivateKey, chipId });
        const record: StoredVcek = { kind, productLine, tcb: { ...tcb }, der: b64(fresh.der), pkcs8: b64(fresh.pkcs8) };
        state.vceks[key] = record;
        const merged: StoredState = { ...latest, vceks: { ...latest.vceks, [key]: record } };
        await writeAtomic(path, JSON.stringify(merged));
        return load(record);
      })();
      issued.set(key, pending);
      pending.catch(() => issued.delete(key));
    }
    return pending;
  };

  return Object.freeze({ dir, arkDer, arkPem: encodePem(arkDer), askDer, chipId, reportId, vcek });
}

function derInteger(value: number): ArrayBuffer {
  return new asn1js.Integer({ value }).toBER(false);
}

function name(attributes: [string, string][]): pkijs.RelativeDistinguishedNames {
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: attributes.map(
      ([type, value]) =>
        new pkijs.AttributeTypeAndValue({
          type,
          value: type === '2.5.4.6' ? new asn1js.PrintableString({ value }) : new asn1js.Utf8String({ value }),
        }),
    ),
  });
}

/**
 * Issue a VCEK the way AMD's KDS does: serial 0, the ASK's subject as issuer, no basicConstraints
 * or keyUsage, and the AMD extensions in KDS order. Built with pkijs because @peculiar/x509 will
 * not write serial number 0.
 */
async function issueVcek(args: {
  kind: SimulatedSigningKey;
  productLine: SnpProductLine;
  tcb: TcbParts;
  askDer: Uint8Array;
  askPrivateKey: CryptoKey;
  chipId: Uint8Array;
}): Promise<{ der: Uint8Array; pkcs8: Uint8Array }> {
  const engine = pkijsEngine();
  const ask = pkijs.Certificate.fromBER(bufferOf(args.askDer));
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ value: 0 });
  cert.issuer = ask.subject;
  cert.subject = name([
    ['2.5.4.11', 'Simulated TEE'],
    ['2.5.4.6', 'US'],
    ['2.5.4.10', 'Obscura local simulation (not AMD)'],
    ['2.5.4.3', args.kind === 'vlek' ? 'SEV-VLEK' : 'SEV-VCEK'],
  ]);
  cert.notBefore = new pkijs.Time({ type: 0, value: new Date(now - BACKDATE_MS) });
  cert.notAfter = new pkijs.Time({ type: 0, value: new Date(now + VCEK_VALIDITY_YEARS * 365.25 * 24 * 3600 * 1000) });
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey, engine);

  const { productLine, tcb } = args;
  const turin = productLine === 'Turin';
  const ext = (oid: string, value: ArrayBuffer) => new pkijs.Extension({ extnID: oid, critical: false, extnValue: value });
  const hwId = turin ? args.chipId.subarray(0, TURIN_HWID_BYTES) : args.chipId;
  cert.extensions = [
    ext(AMD_KDS_OID.structVersion, derInteger(0)),
    ext(AMD_KDS_OID.productName, new asn1js.IA5String({ value: SIM_PRODUCT_NAME[productLine] }).toBER(false)),
    ext(AMD_KDS_OID.blSpl, derInteger(tcb.bootloader)),
    ext(AMD_KDS_OID.teeSpl, derInteger(tcb.tee)),
    ...(turin ? [] : [ext(AMD_KDS_OID.spl4, derInteger(0))]),
    ext(AMD_KDS_OID.spl5, derInteger(0)),
    ext(AMD_KDS_OID.spl6, derInteger(0)),
    ext(AMD_KDS_OID.spl7, derInteger(0)),
    ext(AMD_KDS_OID.snpSpl, derInteger(tcb.snp)),
    ext(AMD_KDS_OID.ucodeSpl, derInteger(tcb.microcode)),
    ...(turin ? [ext(AMD_KDS_OID.fmcSpl, derInteger(tcb.fmc ?? 0))] : []),
    // KDS writes hwID as the raw bytes, with no DER OCTET STRING header inside extnValue. A VLEK
    // is not bound to a chip: it names the cloud provider instead.
    args.kind === 'vlek'
      ? ext(AMD_KDS_OID.cspId, new asn1js.IA5String({ value: SIM_VLEK_CSP_ID }).toBER(false))
      : ext(AMD_KDS_OID.hwId, bufferOf(hwId)),
  ];
  await cert.sign(args.askPrivateKey, 'SHA-384', engine);
  return {
    der: new Uint8Array(cert.toSchema(true).toBER(false)),
    pkcs8: new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey)),
  };
}
