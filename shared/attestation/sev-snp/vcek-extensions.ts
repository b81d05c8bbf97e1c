/**
 * The AMD extensions of a VCEK or VLEK certificate (AMD "Versioned Chip Endorsement Key (VCEK)
 * Certificate and KDS Interface Specification"), OIDs 1.3.6.1.4.1.3704.1.*: the TCB SPLs the key
 * was derived for, the product name, and hwID (VCEK: the chip's CHIP_ID) or cspId (VLEK).
 */
import * as asn1js from 'asn1js';
import { bufferOf } from '../../bytes.ts';
import { ObscuraError } from '../../errors.ts';
import type { ParsedCertificate } from '../x509/certificate.ts';
import { type SnpProductLine, productLineFromName } from './product.ts';
import { CHIP_ID_BYTES } from './report.ts';
import type { TcbLayout } from './tcb.ts';

export const AMD_KDS_OID = Object.freeze({
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  spl4: '1.3.6.1.4.1.3704.1.3.4',
  spl5: '1.3.6.1.4.1.3704.1.3.5',
  spl6: '1.3.6.1.4.1.3704.1.3.6',
  spl7: '1.3.6.1.4.1.3704.1.3.7',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
});

/** Turin VCEKs carry only the first 8 bytes of CHIP_ID as hwID. */
export const TURIN_HWID_BYTES = 8;

export interface AmdEndorsementKeyExtensions {
  readonly structVersion: number;
  readonly productName: string;
  readonly productLine: SnpProductLine;
  /** The SPLs as certified; spl4..spl7 are the TCB's reserved bytes (spl4 is absent on Turin). */
  readonly spl: {
    readonly bootloader: number;
    readonly tee: number;
    readonly snp: number;
    readonly microcode: number;
    readonly fmc?: number;
    readonly spl4: number;
    readonly spl5: number;
    readonly spl6: number;
    readonly spl7: number;
  };
  /** VCEK only: the chip's hardware ID (64 bytes; 8 on Turin). */
  readonly hwId?: Uint8Array;
  /** VLEK only: the cloud provider the key was loaded for. */
  readonly cspId?: string;
}

function value(cert: ParsedCertificate, oid: string): Uint8Array | undefined {
  return cert.extensions.find((e) => e.oid === oid)?.value;
}

function decodeDer(bytes: Uint8Array, what: string): asn1js.AsnType {
  const asn = asn1js.fromBER(bufferOf(bytes));
  if (asn.offset === -1 || asn.offset !== bytes.length) {
    throw new ObscuraError('ERR_MALFORMED', `VCEK extension ${what} is not one DER value`);
  }
  return asn.result;
}

function readSpl(cert: ParsedCertificate, oid: string, what: string, required: boolean): number | undefined {
  const bytes = value(cert, oid);
  if (!bytes) {
    if (required) throw new ObscuraError('ERR_MALFORMED', `VCEK lacks the ${what} extension (${oid})`);
    return undefined;
  }
  const asn = decodeDer(bytes, what);
  if (!(asn instanceof asn1js.Integer)) throw new ObscuraError('ERR_MALFORMED', `VCEK extension ${what} is not an INTEGER`);
  const n = asn.valueBlock.valueDec;
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new ObscuraError('ERR_MALFORMED', `VCEK extension ${what} is not 0..255`);
  return n;
}

function readIa5(cert: ParsedCertificate, oid: string, what: string): string | undefined {
  const bytes = value(cert, oid);
  if (!bytes) return undefined;
  const asn = decodeDer(bytes, what);
  if (!(asn instanceof asn1js.IA5String)) throw new ObscuraError('ERR_MALFORMED', `VCEK extension ${what} is not an IA5String`);
  return asn.valueBlock.value;
}

/**
 * Decode the AMD extensions of a VCEK or VLEK. Throws ERR_MALFORMED when one is missing or badly
 * encoded, ERR_UNSUPPORTED_VERSION for an unknown product name.
 */
export function decodeAmdEndorsementKeyExtensions(cert: ParsedCertificate): AmdEndorsementKeyExtensions {
  const structVersion = readSpl(cert, AMD_KDS_OID.structVersion, 'structVersion', true)!;
  const productName = readIa5(cert, AMD_KDS_OID.productName, 'productName');
  if (productName === undefined) throw new ObscuraError('ERR_MALFORMED', 'VCEK lacks the productName extension');
  const productLine = productLineFromName(productName);
  const turin = productLine === 'Turin';

  let hwId: Uint8Array | undefined;
  const hw = value(cert, AMD_KDS_OID.hwId);
  if (hw) {
    // KDS writes hwID as raw bytes, not as a DER OCTET STRING; accept the DER form too should AMD fix it.
    const size = turin ? TURIN_HWID_BYTES : CHIP_ID_BYTES;
    if (hw.length === size) hwId = hw.slice();
    else {
      const asn = decodeDer(hw, 'hwID');
      if (!(asn instanceof asn1js.OctetString) || asn.valueBlock.valueHexView.length !== size) {
        throw new ObscuraError('ERR_MALFORMED', `VCEK hwID must be ${size} bytes`);
      }
      hwId = new Uint8Array(asn.valueBlock.valueHexView);
    }
  }
  const cspId = readIa5(cert, AMD_KDS_OID.cspId, 'cspId');
  if (hwId && cspId !== undefined) throw new ObscuraError('ERR_MALFORMED', 'an AMD endorsement key has both hwID and cspId');

  const fmc = readSpl(cert, AMD_KDS_OID.fmcSpl, 'fmcSPL', turin);
  return Object.freeze({
    structVersion,
    productName,
    productLine,
    spl: Object.freeze({
      bootloader: readSpl(cert, AMD_KDS_OID.blSpl, 'blSPL', true)!,
      tee: readSpl(cert, AMD_KDS_OID.teeSpl, 'teeSPL', true)!,
      snp: readSpl(cert, AMD_KDS_OID.snpSpl, 'snpSPL', true)!,
      microcode: readSpl(cert, AMD_KDS_OID.ucodeSpl, 'ucodeSPL', true)!,
      ...(turin && fmc !== undefined ? { fmc } : {}),
      spl4: readSpl(cert, AMD_KDS_OID.spl4, 'spl4', !turin) ?? 0,
      spl5: readSpl(cert, AMD_KDS_OID.spl5, 'spl5', true)!,
      spl6: readSpl(cert, AMD_KDS_OID.spl6, 'spl6', true)!,
      spl7: readSpl(cert, AMD_KDS_OID.spl7, 'spl7', true)!,
    }),
    ...(hwId ? { hwId } : {}),
    ...(cspId !== undefined ? { cspId } : {}),
  });
}

/** The full 64-bit TCB_VERSION the extensions certify, in the product line's layout. */
export function certifiedTcbRaw(ext: AmdEndorsementKeyExtensions, layout: TcbLayout): bigint {
  const s = ext.spl;
  const bytes =
    layout === 'turin'
      ? [s.fmc ?? 0, s.bootloader, s.tee, s.snp, s.spl5, s.spl6, s.spl7, s.microcode]
      : [s.bootloader, s.tee, s.spl4, s.spl5, s.spl6, s.spl7, s.snp, s.microcode];
  let raw = 0n;
  for (let i = 7; i >= 0; i--) raw = (raw << 8n) | BigInt(bytes[i]);
  return raw;
}
