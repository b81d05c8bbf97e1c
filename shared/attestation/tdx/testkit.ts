/**
 * TEST SUPPORT ONLY (not exported from index.ts): a stand-in "Intel" PKI made with WebCrypto and
 * pkijs, so the verifier can be exercised on evidence that passes every step (the real vector's TCB
 * info does not cover its platform) and on cases no real vector holds: revoked certificates, each TCB
 * status, TDX module identities, quote v5. The quote's header and body start from the real vector's.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bufferOf, concatBytes, sha256, toHex, utf8 } from '../../bytes.ts';
import { encodePem, pkijsEngine } from '../x509/index.ts';
import { SGX_EXTENSIONS_OID } from './pck-extensions.ts';
import { QUOTE_HEADER_BYTES, TD_QUOTE_BODY_V4_BYTES, type TdxQuote } from './quote.ts';
import type { TdxCollateral } from './verify.ts';

type KeyPair = CryptoKeyPair;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface FakeIntelKeys {
  readonly root: KeyPair;
  readonly pckCa: KeyPair;
  readonly pckLeaf: KeyPair;
  readonly tcbSigning: KeyPair;
  readonly attestation: KeyPair;
}

export async function makeKeys(): Promise<FakeIntelKeys> {
  const gen = () => crypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  return { root: await gen(), pckCa: await gen(), pckLeaf: await gen(), tcbSigning: await gen(), attestation: await gen() };
}

export async function signP256(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, bufferOf(data)));
}

function name(target: pkijs.RelativeDistinguishedNames, cn: string): void {
  target.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: cn }) }));
  target.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({ type: '2.5.4.10', value: new asn1js.Utf8String({ value: 'Intel Corporation' }) }),
  );
}

export interface CertSpec {
  readonly subject: string;
  readonly issuer: string;
  readonly publicKey: CryptoKey;
  readonly signingKey: CryptoKey;
  readonly serial: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly ca: boolean;
  readonly pathLen?: number;
  readonly extensions?: readonly pkijs.Extension[];
}

export async function makeCertificate(spec: CertSpec): Promise<Uint8Array> {
  pkijsEngine();
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ value: spec.serial });
  name(cert.subject, spec.subject);
  name(cert.issuer, spec.issuer);
  cert.notBefore.value = spec.notBefore ?? new Date('2020-01-01T00:00:00Z');
  cert.notAfter.value = spec.notAfter ?? new Date('2040-01-01T00:00:00Z');
  await cert.subjectPublicKeyInfo.importKey(spec.publicKey);
  const bc = new pkijs.BasicConstraints(spec.ca ? { cA: true, ...(spec.pathLen === undefined ? {} : { pathLenConstraint: spec.pathLen }) } : {});
  // keyCertSign | cRLSign for CAs, digitalSignature | nonRepudiation for leaves (Intel's profile).
  const ku = spec.ca
    ? new asn1js.BitString({ valueHex: Uint8Array.of(0x06).buffer, unusedBits: 1 })
    : new asn1js.BitString({ valueHex: Uint8Array.of(0xc0).buffer, unusedBits: 6 });
  cert.extensions = [
    new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: bc.toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: ku.toBER(false) }),
    ...(spec.extensions ?? []),
  ];
  await cert.sign(spec.signingKey, 'SHA-256');
  return new Uint8Array(cert.toSchema(true).toBER(false));
}

export interface CrlSpec {
  readonly issuer: string;
  readonly signingKey: CryptoKey;
  readonly thisUpdate?: Date;
  readonly nextUpdate?: Date;
  readonly revokedSerials?: readonly number[];
}

export async function makeCrl(spec: CrlSpec): Promise<Uint8Array> {
  pkijsEngine();
  const crl = new pkijs.CertificateRevocationList();
  crl.version = 1;
  name(crl.issuer, spec.issuer);
  crl.thisUpdate = new pkijs.Time({ type: 0, value: spec.thisUpdate ?? new Date('2024-01-01T00:00:00Z') });
  crl.nextUpdate = new pkijs.Time({ type: 0, value: spec.nextUpdate ?? new Date('2024-02-01T00:00:00Z') });
  if (spec.revokedSerials && spec.revokedSerials.length > 0) {
    crl.revokedCertificates = spec.revokedSerials.map(
      (s) =>
        new pkijs.RevokedCertificate({
          userCertificate: new asn1js.Integer({ value: s }),
          revocationDate: new pkijs.Time({ type: 0, value: new Date('2023-12-01T00:00:00Z') }),
        }),
    );
  }
  await crl.sign(spec.signingKey, 'SHA-256');
  return new Uint8Array(crl.toSchema(true).toBER(false));
}

export interface PckTcbSpec {
  readonly components?: readonly number[];
  readonly pceSvn?: number;
  readonly fmspc?: Uint8Array;
  readonly pceId?: Uint8Array;
}

function member(oid: string, value: asn1js.AsnType): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), value] });
}

/** The SGX extension's value as Intel encodes it. */
export function makePckExtensionValue(spec: PckTcbSpec = {}): Uint8Array {
  const comps = spec.components ?? DEFAULT_SGX_COMPONENTS;
  const tcb = new asn1js.Sequence({
    value: [
      ...comps.map((c, i) => member(`${SGX_EXTENSIONS_OID}.2.${i + 1}`, new asn1js.Integer({ value: c }))),
      member(`${SGX_EXTENSIONS_OID}.2.17`, new asn1js.Integer({ value: spec.pceSvn ?? 11 })),
      member(`${SGX_EXTENSIONS_OID}.2.18`, new asn1js.OctetString({ valueHex: new Uint8Array(16).buffer })),
    ],
  });
  const seq = new asn1js.Sequence({
    value: [
      member(`${SGX_EXTENSIONS_OID}.1`, new asn1js.OctetString({ valueHex: new Uint8Array(16).fill(7).buffer })),
      member(`${SGX_EXTENSIONS_OID}.2`, tcb),
      member(`${SGX_EXTENSIONS_OID}.3`, new asn1js.OctetString({ valueHex: bufferOf(spec.pceId ?? new Uint8Array(2)) })),
      member(`${SGX_EXTENSIONS_OID}.4`, new asn1js.OctetString({ valueHex: bufferOf(spec.fmspc ?? DEFAULT_FMSPC) })),
      member(`${SGX_EXTENSIONS_OID}.5`, new asn1js.Enumerated({ value: 0 })),
    ],
  });
  return new Uint8Array(seq.toBER(false));
}

export const DEFAULT_FMSPC = Uint8Array.of(0x50, 0x80, 0x6f, 0, 0, 0);
export const DEFAULT_SGX_COMPONENTS: readonly number[] = [5, 5, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
/** The real vector's TEE_TCB_SVN, which the default TCB levels below are written to cover. */
export const DEFAULT_TDX_COMPONENTS: readonly number[] = [3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

export const ROOT_CN = 'Intel SGX Root CA';
export const PCK_CA_CN = 'Intel SGX PCK Platform CA';
export const PCK_LEAF_CN = 'Intel SGX PCK Certificate';
export const TCB_SIGNING_CN = 'Intel SGX TCB Signing';
export const SERIAL = { root: 1, pckCa: 2, pckLeaf: 3, tcbSigning: 4 } as const;

export interface TcbLevelJson {
  tcb: { sgxtcbcomponents: { svn: number }[]; pcesvn: number; tdxtcbcomponents: { svn: number }[] };
  tcbDate: string;
  tcbStatus: string;
  advisoryIDs?: string[];
}

export function tcbLevel(status: string, sgx: readonly number[], pceSvn: number, tdx: readonly number[], advisoryIDs?: string[]): TcbLevelJson {
  return {
    tcb: {
      sgxtcbcomponents: sgx.map((svn) => ({ svn })),
      pcesvn: pceSvn,
      tdxtcbcomponents: tdx.map((svn) => ({ svn })),
    },
    tcbDate: '2023-02-15T00:00:00Z',
    tcbStatus: status,
    ...(advisoryIDs ? { advisoryIDs } : {}),
  };
}

export interface EvidenceSpec {
  /** Real vector quote: its header and TD report body are reused. */
  readonly realQuote: TdxQuote;
  readonly version?: 4 | 5;
  readonly bodyType?: 2 | 3;
  /** Edits to the 584-byte (or, for body type 3, 648-byte) body before signing. */
  readonly editBody?: (body: Uint8Array) => void;
  readonly pck?: PckTcbSpec;
  readonly tcbInfo?: Record<string, unknown>;
  readonly qeIdentity?: Record<string, unknown>;
  readonly revokePckLeaf?: boolean;
  readonly revokePckCa?: boolean;
  readonly pckLeafNotBefore?: Date;
}

export interface FakeEvidence {
  readonly quote: Uint8Array;
  readonly collateral: TdxCollateral;
  readonly trustedRoots: readonly Uint8Array[];
  readonly at: Date;
  readonly rootDer: Uint8Array;
}

function u16(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, n >> 8);
}
function u32(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24);
}

export function defaultTcbInfo(): Record<string, unknown> {
  return {
    id: 'TDX',
    version: 3,
    issueDate: '2024-01-01T00:00:00Z',
    nextUpdate: '2024-02-01T00:00:00Z',
    fmspc: toHex(DEFAULT_FMSPC),
    pceId: '0000',
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tdxModule: { mrsigner: '00'.repeat(48), attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' },
    tcbLevels: [
      tcbLevel('UpToDate', DEFAULT_SGX_COMPONENTS, 11, DEFAULT_TDX_COMPONENTS),
      tcbLevel('OutOfDate', DEFAULT_SGX_COMPONENTS, 5, [3, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ['INTEL-SA-00837']),
    ],
  };
}

export function defaultQeIdentity(): Record<string, unknown> {
  return {
    id: 'TD_QE',
    version: 2,
    issueDate: '2024-01-01T00:00:00Z',
    nextUpdate: '2024-02-01T00:00:00Z',
    tcbEvaluationDataNumber: 17,
    miscselect: '00000000',
    miscselectMask: 'FFFFFFFF',
    attributes: '11000000000000000000000000000000',
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: 'DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5',
    isvprodid: 2,
    tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: '2023-02-15T00:00:00Z', tcbStatus: 'UpToDate' }],
  };
}

/** A PCS-style signed document: the member's JSON text is what gets signed, byte for byte. */
export async function signedDocument(member: string, value: Record<string, unknown>, key: CryptoKey): Promise<string> {
  const text = JSON.stringify(value);
  const sig = await signP256(key, utf8(text));
  return `{"${member}":${text},"signature":"${toHex(sig)}"}`;
}

export async function makeEvidence(keys: FakeIntelKeys, spec: EvidenceSpec): Promise<FakeEvidence> {
  const rootDer = await makeCertificate({
    subject: ROOT_CN,
    issuer: ROOT_CN,
    publicKey: keys.root.publicKey,
    signingKey: keys.root.privateKey,
    serial: SERIAL.root,
    ca: true,
    pathLen: 1,
  });
  const caDer = await makeCertificate({
    subject: PCK_CA_CN,
    issuer: ROOT_CN,
    publicKey: keys.pckCa.publicKey,
    signingKey: keys.root.privateKey,
    serial: SERIAL.pckCa,
    ca: true,
    pathLen: 0,
  });
  const sgxExt = new pkijs.Extension({ extnID: SGX_EXTENSIONS_OID, critical: false, extnValue: bufferOf(makePckExtensionValue(spec.pck)) });
  const leafDer = await makeCertificate({
    subject: PCK_LEAF_CN,
    issuer: PCK_CA_CN,
    publicKey: keys.pckLeaf.publicKey,
    signingKey: keys.pckCa.privateKey,
    serial: SERIAL.pckLeaf,
    ca: false,
    notBefore: spec.pckLeafNotBefore,
    extensions: [sgxExt],
  });
  const signingDer = await makeCertificate({
    subject: TCB_SIGNING_CN,
    issuer: ROOT_CN,
    publicKey: keys.tcbSigning.publicKey,
    signingKey: keys.root.privateKey,
    serial: SERIAL.tcbSigning,
    ca: false,
  });

  // Quote: header || [v5 body descriptor] || body, then the signature data.
  const real = spec.realQuote;
  const version = spec.version ?? 4;
  const bodyType = spec.bodyType ?? 2;
  const header = real.signedBytes.slice(0, QUOTE_HEADER_BYTES);
  header[0] = version;
  let body: Uint8Array = real.signedBytes.slice(QUOTE_HEADER_BYTES, QUOTE_HEADER_BYTES + TD_QUOTE_BODY_V4_BYTES);
  if (bodyType === 3) body = concatBytes(body, new Uint8Array(16), new Uint8Array(48).fill(0x5e));
  spec.editBody?.(body);
  const signedPart = version === 5 ? concatBytes(header, u16(bodyType), u32(body.length), body) : concatBytes(header, body);

  const attKey = new Uint8Array((await crypto.subtle.exportKey('raw', keys.attestation.publicKey)) as ArrayBuffer).slice(1);
  const authData = real.qeAuthData;
  const qeReport = real.qeReport.raw.slice();
  qeReport.set(await sha256(concatBytes(attKey, authData)), 320);
  qeReport.fill(0, 352, 384);
  const qeReportSig = await signP256(keys.pckLeaf.privateKey, qeReport);
  const pem = utf8(encodePem(leafDer) + encodePem(caDer) + encodePem(rootDer));
  const inner = concatBytes(qeReport, qeReportSig, u16(authData.length), authData, u16(5), u32(pem.length), pem);
  const quoteSig = await signP256(keys.attestation.privateKey, signedPart);
  const sigData = concatBytes(quoteSig, attKey, u16(6), u32(inner.length), inner);
  const quote = concatBytes(signedPart, u32(sigData.length), sigData);

  const collateral: TdxCollateral = {
    tcbInfoJson: await signedDocument('tcbInfo', spec.tcbInfo ?? defaultTcbInfo(), keys.tcbSigning.privateKey),
    tcbInfoIssuerChainPem: encodePem(signingDer) + encodePem(rootDer),
    qeIdentityJson: await signedDocument('enclaveIdentity', spec.qeIdentity ?? defaultQeIdentity(), keys.tcbSigning.privateKey),
    qeIdentityIssuerChainPem: encodePem(signingDer) + encodePem(rootDer),
    pckCrlDer: await makeCrl({
      issuer: PCK_CA_CN,
      signingKey: keys.pckCa.privateKey,
      revokedSerials: spec.revokePckLeaf ? [99, SERIAL.pckLeaf] : [99],
    }),
    pckCrlIssuerChainPem: encodePem(caDer) + encodePem(rootDer),
    rootCrlDer: await makeCrl({ issuer: ROOT_CN, signingKey: keys.root.privateKey, revokedSerials: spec.revokePckCa ? [SERIAL.pckCa] : [] }),
  };
  return { quote, collateral, trustedRoots: [rootDer], at: new Date('2024-01-15T00:00:00Z'), rootDer };
}
