/**
 * Intel TDX quote, versions 4 and 5 (Intel "TDX DCAP Quoting Library API", appendix "TD Quote Format"),
 * with ECDSA-256-with-P-256 attestation keys and QE report certification data (type 6) wrapping a PCK
 * certificate chain (type 5). Parse only: nothing here is trusted until verify.ts has checked it.
 *
 *   v4: header (48) | TD quote body (584)                         | u32 sig data len | sig data
 *   v5: header (48) | body type u16, body size u32 | body (584/648) | u32 sig data len | sig data
 *   sig data: quote signature (64) | attestation key (64) | cert data type 6 u16 | size u32 |
 *             QE report (384) | QE report signature (64) | QE auth data size u16 | QE auth data |
 *             cert data type 5 u16 | size u32 | PCK cert chain PEM
 */
import { ObscuraError } from '../../errors.ts';
import { fromHex, fromUtf8, equalBytes } from '../../bytes.ts';
import { ByteReader } from '../byte-reader.ts';
import { parseQeReport, SGX_REPORT_BODY_BYTES, type QeReport } from './qe-report.ts';
import { decodePem } from '../x509/pem.ts';

export const QUOTE_VERSION_4 = 4;
export const QUOTE_VERSION_5 = 5;
export const QUOTE_HEADER_BYTES = 48;
/** TD report 1.0 body: the only body of quote v4, body type 2 in v5. */
export const TD_QUOTE_BODY_V4_BYTES = 584;
/** TD report 1.5 body (v5 body type 3): the 1.0 body, TEE_TCB_SVN_2 and MRSERVICETD. */
export const TD_QUOTE_BODY_V5_TDX15_BYTES = 648;
export const QUOTE_V5_BODY_DESCRIPTOR_BYTES = 6;
export const QUOTE_BODY_TYPE_TDX10 = 2;
export const QUOTE_BODY_TYPE_TDX15 = 3;

export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2;
export const TEE_TYPE_TDX = 0x81;
/** Intel's Quoting Enclave: the only QE whose certification data layout this verifier knows. */
export const INTEL_QE_VENDOR_ID = fromHex('939a7233f79c4ca9940a0db3957f0607');
export const QE_VENDOR_ID_BYTES = 16;
export const QUOTE_USER_DATA_BYTES = 20;

export const TEE_TCB_SVN_BYTES = 16;
export const TDX_MEASUREMENT_BYTES = 48;
export const TDX_ATTRIBUTES_BYTES = 8;
export const TDX_REPORT_DATA_BYTES = 64;
export const TDX_RTMR_COUNT = 4;

export const ECDSA_P256_SIGNATURE_BYTES = 64;
export const ECDSA_P256_PUBLIC_KEY_BYTES = 64;
export const CERT_DATA_TYPE_PCK_CERT_CHAIN = 5;
export const CERT_DATA_TYPE_QE_REPORT = 6;
/** Intel's chain is leaf, CA, root; a few spare bound the work a hostile quote can cause. */
export const PCK_CHAIN_MAX_CERTIFICATES = 4;
const PEM_CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----/g;

export interface TdxQuoteHeader {
  readonly version: 4 | 5;
  readonly attestationKeyType: number;
  readonly teeType: number;
  readonly qeVendorId: Uint8Array;
  /** For Intel's QE: its first 16 bytes identify the platform's certification key. */
  readonly userData: Uint8Array;
}

export interface TdQuoteBody {
  /** 2 (TDX 1.0 report) for every v4 quote; 2 or 3 (TDX 1.5 report) in v5. */
  readonly bodyType: 2 | 3;
  readonly teeTcbSvn: Uint8Array;
  readonly mrSeam: Uint8Array;
  readonly mrSignerSeam: Uint8Array;
  readonly seamAttributes: Uint8Array;
  /** Little-endian 64-bit field as in the quote; bit 0 is DEBUG. */
  readonly tdAttributes: Uint8Array;
  readonly xfam: Uint8Array;
  readonly mrTd: Uint8Array;
  readonly mrConfigId: Uint8Array;
  readonly mrOwner: Uint8Array;
  readonly mrOwnerConfig: Uint8Array;
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  readonly reportData: Uint8Array;
  /** Body type 3 only. */
  readonly teeTcbSvn2?: Uint8Array;
  /** Body type 3 only. */
  readonly mrServiceTd?: Uint8Array;
}

export interface TdxQuote {
  readonly header: TdxQuoteHeader;
  readonly body: TdQuoteBody;
  /** What the attestation key signs: every byte before the signature data length. */
  readonly signedBytes: Uint8Array;
  /** ECDSA P-256 r || s, 32 bytes each, big-endian. */
  readonly signature: Uint8Array;
  /** ECDSA P-256 public point x || y, 32 bytes each, big-endian. */
  readonly attestationKey: Uint8Array;
  readonly qeReport: QeReport;
  readonly qeReportSignature: Uint8Array;
  readonly qeAuthData: Uint8Array;
  /** The PCK chain as quoted (trailing NULs removed), and its certificates in order: leaf first. */
  readonly pckCertChainPem: string;
  readonly pckCertChainDer: readonly Uint8Array[];
  /**
   * Bytes after the signature data. The quote's own length fields delimit it (as in Intel's QVL);
   * what follows is neither signed nor read, and the vector in test/vectors carries 39 such bytes.
   */
  readonly trailingBytes: number;
}

/** Parses a TDX quote v4 or v5. Throws ObscuraError (ERR_MALFORMED, ERR_UNSUPPORTED_VERSION, ERR_RESERVED_NONZERO). */
export function parseQuote(bytes: Uint8Array): TdxQuote {
  if (!(bytes instanceof Uint8Array)) throw new ObscuraError('ERR_MALFORMED', 'TDX quote must be bytes');
  const r = new ByteReader(bytes);
  const header = parseHeader(r);
  const body = header.version === QUOTE_VERSION_4 ? parseBody(r, QUOTE_BODY_TYPE_TDX10) : parseV5Body(r);
  const signedBytes = bytes.slice(0, r.offset);

  const sigDataBytes = r.u32('quote signature data length');
  const sig = new ByteReader(r.take(sigDataBytes, 'quote signature data'));
  const trailingBytes = r.remaining;

  const signature = sig.take(ECDSA_P256_SIGNATURE_BYTES, 'quote signature');
  const attestationKey = sig.take(ECDSA_P256_PUBLIC_KEY_BYTES, 'attestation key');
  const outerType = sig.u16('certification data type');
  if (outerType !== CERT_DATA_TYPE_QE_REPORT) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `certification data type ${outerType} is not QE report certification data (6)`);
  }
  const outer = new ByteReader(sig.take(sig.u32('certification data size'), 'QE report certification data'));
  sig.end('quote signature data');

  const qeReport = parseQeReport(outer.take(SGX_REPORT_BODY_BYTES, 'QE report'));
  const qeReportSignature = outer.take(ECDSA_P256_SIGNATURE_BYTES, 'QE report signature');
  const qeAuthData = outer.take(outer.u16('QE auth data size'), 'QE auth data');
  const innerType = outer.u16('PCK certification data type');
  if (innerType !== CERT_DATA_TYPE_PCK_CERT_CHAIN) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `PCK certification data type ${innerType} is not a PCK cert chain (5)`);
  }
  const chainBytes = outer.take(outer.u32('PCK cert chain size'), 'PCK cert chain');
  outer.end('QE report certification data');

  // Intel's QE terminates the PEM with a NUL on some platforms: not part of the text.
  const pckCertChainPem = fromUtf8(chainBytes).replace(/\0+$/, '');
  // decodePem skips text between blocks (RFC 7468 allows it); in a quote such text can only be damage,
  // and skipping a garbled first block would silently promote the next certificate to leaf.
  if (pckCertChainPem.replace(PEM_CERTIFICATE_BLOCK, '').trim() !== '') {
    throw new ObscuraError('ERR_MALFORMED', 'PCK cert chain holds text outside its CERTIFICATE blocks');
  }
  const pckCertChainDer = decodePem(pckCertChainPem, 'CERTIFICATE');
  if (pckCertChainDer.length > PCK_CHAIN_MAX_CERTIFICATES) {
    throw new ObscuraError('ERR_MALFORMED', `PCK cert chain holds ${pckCertChainDer.length} certificates`);
  }

  return {
    header,
    body,
    signedBytes,
    signature,
    attestationKey,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckCertChainPem,
    pckCertChainDer,
    trailingBytes,
  };
}

function parseHeader(r: ByteReader): TdxQuoteHeader {
  const version = r.u16('quote version');
  if (version !== QUOTE_VERSION_4 && version !== QUOTE_VERSION_5) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `TDX quote version ${version} is not 4 or 5`);
  }
  const attestationKeyType = r.u16('attestation key type');
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `attestation key type ${attestationKeyType} is not ECDSA-256-with-P-256 (2)`);
  }
  const teeType = r.u32('TEE type');
  if (teeType !== TEE_TYPE_TDX) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `TEE type 0x${teeType.toString(16)} is not TDX (0x81)`);
  }
  // Quote v3 put QE SVN and PCE SVN here; v4 and v5 reserve these 4 bytes.
  r.reserved(4, 'quote header reserved bytes');
  const qeVendorId = r.take(QE_VENDOR_ID_BYTES, 'QE vendor ID');
  if (!equalBytes(qeVendorId, INTEL_QE_VENDOR_ID)) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', 'QE vendor ID is not Intel\'s Quoting Enclave');
  }
  const userData = r.take(QUOTE_USER_DATA_BYTES, 'quote user data');
  return { version: version as 4 | 5, attestationKeyType, teeType, qeVendorId, userData };
}

function parseV5Body(r: ByteReader): TdQuoteBody {
  const bodyType = r.u16('quote body type');
  const bodySize = r.u32('quote body size');
  if (bodyType !== QUOTE_BODY_TYPE_TDX10 && bodyType !== QUOTE_BODY_TYPE_TDX15) {
    throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `quote v5 body type ${bodyType} is not a TD report (2 or 3)`);
  }
  const expected = bodyType === QUOTE_BODY_TYPE_TDX10 ? TD_QUOTE_BODY_V4_BYTES : TD_QUOTE_BODY_V5_TDX15_BYTES;
  if (bodySize !== expected) {
    throw new ObscuraError('ERR_MALFORMED', `quote v5 body type ${bodyType} declares ${bodySize} bytes, expected ${expected}`);
  }
  return parseBody(r, bodyType);
}

function parseBody(r: ByteReader, bodyType: 2 | 3): TdQuoteBody {
  const m = (what: string): Uint8Array => r.take(TDX_MEASUREMENT_BYTES, what);
  const teeTcbSvn = r.take(TEE_TCB_SVN_BYTES, 'TEE_TCB_SVN'); // 0
  const mrSeam = m('MRSEAM'); // 16
  const mrSignerSeam = m('MRSIGNERSEAM'); // 64
  const seamAttributes = r.take(TDX_ATTRIBUTES_BYTES, 'SEAMATTRIBUTES'); // 112
  const tdAttributes = r.take(TDX_ATTRIBUTES_BYTES, 'TDATTRIBUTES'); // 120
  const xfam = r.take(TDX_ATTRIBUTES_BYTES, 'XFAM'); // 128
  const mrTd = m('MRTD'); // 136
  const mrConfigId = m('MRCONFIGID'); // 184
  const mrOwner = m('MROWNER'); // 232
  const mrOwnerConfig = m('MROWNERCONFIG'); // 280
  const rtmrs = [m('RTMR0'), m('RTMR1'), m('RTMR2'), m('RTMR3')] as const; // 328, 376, 424, 472
  const reportData = r.take(TDX_REPORT_DATA_BYTES, 'REPORTDATA'); // 520
  const body: TdQuoteBody = {
    bodyType,
    teeTcbSvn,
    mrSeam,
    mrSignerSeam,
    seamAttributes,
    tdAttributes,
    xfam,
    mrTd,
    mrConfigId,
    mrOwner,
    mrOwnerConfig,
    rtmrs,
    reportData,
  };
  if (bodyType === QUOTE_BODY_TYPE_TDX10) return body;
  const teeTcbSvn2 = r.take(TEE_TCB_SVN_BYTES, 'TEE_TCB_SVN_2'); // 584
  const mrServiceTd = m('MRSERVICETD'); // 600
  return { ...body, teeTcbSvn2, mrServiceTd };
}
