/**
 * Writes Intel TDX quotes, version 4, in the layout shared/attestation/tdx/quote.ts parses (Intel "TDX
 * DCAP Quoting Library API", "TD Quote Format"): header | TD report body | signature data, where the
 * signature data is the attestation key's ECDSA P-256 signature over header || body, the attestation
 * key, and QE report certification data (type 6): the Quoting Enclave's report (signed by the PCK
 * leaf, its REPORTDATA binding the attestation key), QE auth data and the PCK chain (type 5, PEM).
 * The simulated TDX machine (simulated-tdx.ts) signs its quotes with this. Little-endian throughout.
 */
import { bufferOf, concatBytes, sha256, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  CERT_DATA_TYPE_PCK_CERT_CHAIN,
  CERT_DATA_TYPE_QE_REPORT,
  ECDSA_P256_PUBLIC_KEY_BYTES,
  ECDSA_P256_SIGNATURE_BYTES,
  INTEL_QE_VENDOR_ID,
  QUOTE_HEADER_BYTES,
  QUOTE_USER_DATA_BYTES,
  QUOTE_VERSION_4,
  TD_QUOTE_BODY_V4_BYTES,
  TDX_ATTRIBUTES_BYTES,
  TDX_MEASUREMENT_BYTES,
  TDX_REPORT_DATA_BYTES,
  TEE_TCB_SVN_BYTES,
  TEE_TYPE_TDX,
} from '../../shared/attestation/tdx/quote.ts';
import { SGX_REPORT_BODY_BYTES, SGX_REPORT_DATA_BYTES } from '../../shared/attestation/tdx/qe-report.ts';

/** The TD report fields a TDX 1.0 body (the only body of a v4 quote) carries, at their sizes. */
export interface TdReportBodyFields {
  readonly teeTcbSvn: Uint8Array; // 16
  readonly mrSeam: Uint8Array; // 48
  readonly mrSignerSeam: Uint8Array; // 48
  readonly seamAttributes: Uint8Array; // 8
  /** Little-endian 64 bits; bit 0 is DEBUG. */
  readonly tdAttributes: Uint8Array; // 8
  readonly xfam: Uint8Array; // 8
  readonly mrTd: Uint8Array; // 48
  readonly mrConfigId: Uint8Array; // 48
  readonly mrOwner: Uint8Array; // 48
  readonly mrOwnerConfig: Uint8Array; // 48
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]; // 48 each
  readonly reportData: Uint8Array; // 64
}

/** The Quoting Enclave's SGX report body; REPORTDATA is computed by writeTdxQuote. */
export interface QeReportFields {
  readonly cpuSvn: Uint8Array; // 16
  readonly miscSelect: Uint8Array; // 4, as in the report (little-endian)
  readonly isvExtProdId: Uint8Array; // 16
  readonly attributes: Uint8Array; // 16
  readonly mrEnclave: Uint8Array; // 32
  readonly mrSigner: Uint8Array; // 32
  readonly configId: Uint8Array; // 64
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly configSvn: number;
  readonly isvFamilyId: Uint8Array; // 16
}

export interface TdxQuoteSigners {
  /** The QE's attestation key pair (ECDSA P-256): signs header || body; its public key is quoted. */
  readonly attestationKey: CryptoKeyPair;
  /** The PCK leaf's private key (ECDSA P-256): signs the QE report. */
  readonly pckKey: CryptoKey;
  /** The PCK chain as the QE embeds it: leaf, PCK CA, root (PEM). */
  readonly pckChainPem: string;
}

export interface TdxQuoteInput extends TdxQuoteSigners {
  /** 20 bytes; Intel's QE puts its QE ID in the first 16. */
  readonly userData: Uint8Array;
  readonly body: TdReportBodyFields;
  readonly qeReport: QeReportFields;
  /** Intel's QE sends 32 bytes here. */
  readonly qeAuthData: Uint8Array;
}

const QE_REPORT_DATA_BINDING_BYTES = 32;

function sized(value: Uint8Array, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) throw new ObscuraError('ERR_USAGE', `${what} must be ${length} bytes`);
  return value;
}

function u16(n: number, what: string): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new ObscuraError('ERR_USAGE', `${what} must fit 16 bits`);
  return Uint8Array.of(n & 0xff, n >>> 8);
}

function u32(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/** The 48-byte v4 header: version 4, ECDSA-256-with-P-256, TEE type TDX, Intel's QE vendor ID. */
export function encodeTdxQuoteHeader(userData: Uint8Array): Uint8Array {
  const out = concatBytes(
    u16(QUOTE_VERSION_4, 'version'),
    u16(ATTESTATION_KEY_TYPE_ECDSA_P256, 'attestation key type'),
    u32(TEE_TYPE_TDX),
    new Uint8Array(4), // reserved in v4
    INTEL_QE_VENDOR_ID,
    sized(userData, QUOTE_USER_DATA_BYTES, 'user data'),
  );
  if (out.length !== QUOTE_HEADER_BYTES) throw new ObscuraError('ERR_USAGE', 'TDX quote header has the wrong size');
  return out;
}

/** The 584-byte TD report body at the offsets quote.ts reads. */
export function encodeTdReportBody(f: TdReportBodyFields): Uint8Array {
  const m = (v: Uint8Array, what: string) => sized(v, TDX_MEASUREMENT_BYTES, what);
  if (!Array.isArray(f.rtmrs) || f.rtmrs.length !== 4) throw new ObscuraError('ERR_USAGE', 'rtmrs must be 4 values');
  const out = concatBytes(
    sized(f.teeTcbSvn, TEE_TCB_SVN_BYTES, 'TEE_TCB_SVN'),
    m(f.mrSeam, 'MRSEAM'),
    m(f.mrSignerSeam, 'MRSIGNERSEAM'),
    sized(f.seamAttributes, TDX_ATTRIBUTES_BYTES, 'SEAMATTRIBUTES'),
    sized(f.tdAttributes, TDX_ATTRIBUTES_BYTES, 'TDATTRIBUTES'),
    sized(f.xfam, TDX_ATTRIBUTES_BYTES, 'XFAM'),
    m(f.mrTd, 'MRTD'),
    m(f.mrConfigId, 'MRCONFIGID'),
    m(f.mrOwner, 'MROWNER'),
    m(f.mrOwnerConfig, 'MROWNERCONFIG'),
    ...f.rtmrs.map((r, i) => m(r, `RTMR${i}`)),
    sized(f.reportData, TDX_REPORT_DATA_BYTES, 'REPORTDATA'),
  );
  if (out.length !== TD_QUOTE_BODY_V4_BYTES) throw new ObscuraError('ERR_USAGE', 'TD report body has the wrong size');
  return out;
}

/** The 384-byte SGX report body (sgx_report_body_t), reserved bytes zero. */
export function encodeQeReport(f: QeReportFields, reportData: Uint8Array): Uint8Array {
  const out = concatBytes(
    sized(f.cpuSvn, 16, 'QE CPUSVN'),
    sized(f.miscSelect, 4, 'QE MISCSELECT'),
    new Uint8Array(12),
    sized(f.isvExtProdId, 16, 'QE ISVEXTPRODID'),
    sized(f.attributes, 16, 'QE ATTRIBUTES'),
    sized(f.mrEnclave, 32, 'QE MRENCLAVE'),
    new Uint8Array(32),
    sized(f.mrSigner, 32, 'QE MRSIGNER'),
    new Uint8Array(32),
    sized(f.configId, 64, 'QE CONFIGID'),
    u16(f.isvProdId, 'QE ISVPRODID'),
    u16(f.isvSvn, 'QE ISVSVN'),
    u16(f.configSvn, 'QE CONFIGSVN'),
    new Uint8Array(42),
    sized(f.isvFamilyId, 16, 'QE ISVFAMILYID'),
    sized(reportData, SGX_REPORT_DATA_BYTES, 'QE REPORTDATA'),
  );
  if (out.length !== SGX_REPORT_BODY_BYTES) throw new ObscuraError('ERR_USAGE', 'QE report has the wrong size');
  return out;
}

/** Every part of a quote, already signed: assembleTdxQuote only lays them out. */
export interface TdxQuoteParts {
  readonly header: Uint8Array; // 48
  readonly body: Uint8Array; // 584
  readonly signature: Uint8Array; // 64, r || s
  readonly attestationKey: Uint8Array; // 64, x || y
  readonly qeReport: Uint8Array; // 384
  readonly qeReportSignature: Uint8Array; // 64
  readonly qeAuthData: Uint8Array;
  readonly pckChainPem: string;
}

export function assembleTdxQuote(p: TdxQuoteParts): Uint8Array {
  const chain = utf8(p.pckChainPem);
  const certData = concatBytes(
    sized(p.qeReport, SGX_REPORT_BODY_BYTES, 'QE report'),
    sized(p.qeReportSignature, ECDSA_P256_SIGNATURE_BYTES, 'QE report signature'),
    u16(p.qeAuthData.length, 'QE auth data size'),
    p.qeAuthData,
    u16(CERT_DATA_TYPE_PCK_CERT_CHAIN, 'certification data type'),
    u32(chain.length),
    chain,
  );
  const sigData = concatBytes(
    sized(p.signature, ECDSA_P256_SIGNATURE_BYTES, 'quote signature'),
    sized(p.attestationKey, ECDSA_P256_PUBLIC_KEY_BYTES, 'attestation key'),
    u16(CERT_DATA_TYPE_QE_REPORT, 'certification data type'),
    u32(certData.length),
    certData,
  );
  return concatBytes(sized(p.header, QUOTE_HEADER_BYTES, 'header'), sized(p.body, TD_QUOTE_BODY_V4_BYTES, 'body'), u32(sigData.length), sigData);
}

async function signP256(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  // WebCrypto's ECDSA signature is r || s (IEEE P1363), the form the quote carries.
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, bufferOf(data)));
}

/** The attestation key as the quote carries it: the uncompressed point without its 0x04 prefix. */
export async function rawP256PublicKey(key: CryptoKey): Promise<Uint8Array> {
  const raw = new Uint8Array((await crypto.subtle.exportKey('raw', key)) as ArrayBuffer);
  if (raw.length !== 1 + ECDSA_P256_PUBLIC_KEY_BYTES || raw[0] !== 0x04) throw new ObscuraError('ERR_USAGE', 'the attestation key is not a P-256 public key');
  return raw.slice(1);
}

/**
 * A signed quote: the QE report's REPORTDATA is SHA-256(attestation key || QE auth data) || 32 zero
 * bytes and is signed by the PCK key; header || body is signed by the attestation key.
 */
export async function writeTdxQuote(input: TdxQuoteInput): Promise<Uint8Array> {
  const header = encodeTdxQuoteHeader(input.userData);
  const body = encodeTdReportBody(input.body);
  const attestationKey = await rawP256PublicKey(input.attestationKey.publicKey);
  const binding = await sha256(concatBytes(attestationKey, input.qeAuthData));
  const qeReportData = concatBytes(binding, new Uint8Array(SGX_REPORT_DATA_BYTES - QE_REPORT_DATA_BINDING_BYTES));
  const qeReport = encodeQeReport(input.qeReport, qeReportData);
  return assembleTdxQuote({
    header,
    body,
    signature: await signP256(input.attestationKey.privateKey, concatBytes(header, body)),
    attestationKey,
    qeReport,
    qeReportSignature: await signP256(input.pckKey, qeReport),
    qeAuthData: input.qeAuthData,
    pckChainPem: input.pckChainPem,
  });
}
