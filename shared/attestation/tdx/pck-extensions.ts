/**
 * Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1; Intel "SGX PCK Certificate and
 * Certificate Revocation List Profile"): the platform's FMSPC, PCE ID and TCB (16 SGX component SVNs,
 * PCESVN, CPUSVN). Decoded with asn1js, DER only; the certificate must already be verified.
 */
import * as asn1js from 'asn1js';
import { ObscuraError } from '../../errors.ts';
import { equalBytes } from '../../bytes.ts';

export const SGX_EXTENSIONS_OID = '1.2.840.113741.1.13.1';
const OID_PPID = `${SGX_EXTENSIONS_OID}.1`;
const OID_TCB = `${SGX_EXTENSIONS_OID}.2`;
const OID_PCESVN = `${OID_TCB}.17`;
const OID_CPUSVN = `${OID_TCB}.18`;
const OID_PCEID = `${SGX_EXTENSIONS_OID}.3`;
const OID_FMSPC = `${SGX_EXTENSIONS_OID}.4`;
const OID_SGX_TYPE = `${SGX_EXTENSIONS_OID}.5`;
const OID_PLATFORM_INSTANCE_ID = `${SGX_EXTENSIONS_OID}.6`;
const OID_CONFIGURATION = `${SGX_EXTENSIONS_OID}.7`;

export const SGX_TCB_COMPONENT_COUNT = 16;
export const PPID_BYTES = 16;
export const CPUSVN_BYTES = 16;
export const PCEID_BYTES = 2;
export const FMSPC_BYTES = 6;
export const PLATFORM_INSTANCE_ID_BYTES = 16;

export interface PckExtensions {
  readonly ppid: Uint8Array;
  /** SGX TCB component SVNs 1..16, in order. */
  readonly tcbComponents: readonly number[];
  readonly pceSvn: number;
  readonly cpuSvn: Uint8Array;
  readonly pceId: Uint8Array;
  readonly fmspc: Uint8Array;
  /** 0 = Standard, 1 = Scalable, 2 = Scalable with Integrity (Intel's enumeration). */
  readonly sgxType: number;
  /** Only in certificates issued by the PCK Platform CA. */
  readonly platformInstanceId?: Uint8Array;
  readonly configuration?: { readonly dynamicPlatform?: boolean; readonly cachedKeys?: boolean; readonly smtEnabled?: boolean };
}

function fail(message: string): never {
  throw new ObscuraError('ERR_MALFORMED', `PCK SGX extension: ${message}`);
}

/** DER only: BER's alternative encodings would let two byte strings carry one meaning. */
function decodeDer(bytes: Uint8Array): asn1js.AsnType {
  const result = asn1js.fromBER(bytes);
  if (result.offset === -1 || result.offset !== bytes.length) fail('not a single ASN.1 value');
  const reencoded = new Uint8Array(result.result.toBER(false));
  if (!equalBytes(reencoded, bytes)) fail('not DER');
  return result.result;
}

/** SEQUENCE OF SEQUENCE { OID, value }, each OID at most once. */
function members(node: asn1js.AsnType, what: string): Map<string, asn1js.AsnType> {
  if (!(node instanceof asn1js.Sequence)) fail(`${what} is not a SEQUENCE`);
  const out = new Map<string, asn1js.AsnType>();
  for (const item of node.valueBlock.value) {
    if (!(item instanceof asn1js.Sequence) || item.valueBlock.value.length !== 2) fail(`${what} holds a malformed entry`);
    const [oid, value] = item.valueBlock.value;
    if (!(oid instanceof asn1js.ObjectIdentifier)) fail(`${what} entry has no OID`);
    const id = oid.getValue();
    if (out.has(id)) fail(`${what} repeats ${id}`);
    out.set(id, value);
  }
  return out;
}

function octets(map: Map<string, asn1js.AsnType>, oid: string, length: number, what: string): Uint8Array {
  const v = map.get(oid);
  if (!(v instanceof asn1js.OctetString) || v.idBlock.isConstructed) fail(`${what} is not an OCTET STRING`);
  const bytes = v.valueBlock.valueHexView.slice();
  if (bytes.length !== length) fail(`${what} is ${bytes.length} bytes, expected ${length}`);
  return bytes;
}

function smallInt(v: asn1js.AsnType | undefined, max: number, what: string, enumerated = false): number {
  const ok = enumerated ? v instanceof asn1js.Enumerated : v instanceof asn1js.Integer && !(v instanceof asn1js.Enumerated);
  if (!ok) fail(`${what} is not an ${enumerated ? 'ENUMERATED' : 'INTEGER'}`);
  const hex = (v as asn1js.Integer).valueBlock.valueHexView;
  if (hex.length === 0 || hex.length > 3 || hex[0] & 0x80) fail(`${what} is negative or too large`);
  let n = 0;
  for (const b of hex) n = n * 256 + b;
  if (n > max) fail(`${what} ${n} exceeds ${max}`);
  return n;
}

function bool(v: asn1js.AsnType | undefined, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof asn1js.Boolean)) fail(`${what} is not a BOOLEAN`);
  return v.getValue();
}

/** Decodes the extension's value (the bytes inside extnValue). Throws ERR_MALFORMED. */
export function parsePckExtensions(extnValue: Uint8Array): PckExtensions {
  try {
    return decodePckExtensions(extnValue);
  } catch (cause) {
    // asn1js throws plain Errors on some malformed encodings (e.g. an OID it cannot print).
    if (cause instanceof ObscuraError) throw cause;
    throw new ObscuraError('ERR_MALFORMED', 'PCK SGX extension: not decodable', { cause });
  }
}

function decodePckExtensions(extnValue: Uint8Array): PckExtensions {
  const top = members(decodeDer(extnValue), 'SGX extensions');
  for (const id of top.keys()) {
    if (![OID_PPID, OID_TCB, OID_PCEID, OID_FMSPC, OID_SGX_TYPE, OID_PLATFORM_INSTANCE_ID, OID_CONFIGURATION].includes(id)) {
      fail(`unknown member ${id}`);
    }
  }
  const tcbNode = top.get(OID_TCB);
  if (tcbNode === undefined) fail('TCB is missing');
  const tcb = members(tcbNode, 'TCB');
  const tcbComponents: number[] = [];
  for (let i = 1; i <= SGX_TCB_COMPONENT_COUNT; i++) {
    tcbComponents.push(smallInt(tcb.get(`${OID_TCB}.${i}`), 0xff, `TCB component ${i}`));
  }
  if (tcb.size !== SGX_TCB_COMPONENT_COUNT + 2) fail('TCB has missing or unknown members');
  const pceSvn = smallInt(tcb.get(OID_PCESVN), 0xffff, 'PCESVN');
  const cpuSvn = octets(tcb, OID_CPUSVN, CPUSVN_BYTES, 'CPUSVN');

  const out: {
    -readonly [K in keyof PckExtensions]: PckExtensions[K];
  } = {
    ppid: octets(top, OID_PPID, PPID_BYTES, 'PPID'),
    tcbComponents,
    pceSvn,
    cpuSvn,
    pceId: octets(top, OID_PCEID, PCEID_BYTES, 'PCE-ID'),
    fmspc: octets(top, OID_FMSPC, FMSPC_BYTES, 'FMSPC'),
    sgxType: smallInt(top.get(OID_SGX_TYPE), 0xff, 'SGX type', true),
  };
  if (top.has(OID_PLATFORM_INSTANCE_ID)) {
    out.platformInstanceId = octets(top, OID_PLATFORM_INSTANCE_ID, PLATFORM_INSTANCE_ID_BYTES, 'PlatformInstanceID');
  }
  const configNode = top.get(OID_CONFIGURATION);
  if (configNode !== undefined) {
    const c = members(configNode, 'Configuration');
    const known = [1, 2, 3].map((i) => `${OID_CONFIGURATION}.${i}`);
    for (const id of c.keys()) if (!known.includes(id)) fail(`Configuration has unknown member ${id}`);
    out.configuration = {
      dynamicPlatform: bool(c.get(`${OID_CONFIGURATION}.1`), 'dynamicPlatform'),
      cachedKeys: bool(c.get(`${OID_CONFIGURATION}.2`), 'cachedKeys'),
      smtEnabled: bool(c.get(`${OID_CONFIGURATION}.3`), 'SMTEnabled'),
    };
  }
  return out;
}
