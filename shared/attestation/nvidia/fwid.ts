/**
 * The firmware ID NVIDIA puts in the attestation certificate, extension 2.23.133.5.4.1 (the TCG DICE
 * TcbInfo OID): SEQUENCE { INTEGER, SubjectPublicKeyInfo, SEQUENCE { hashAlg OID, digest OCTET STRING } }.
 * Newer drivers also report the FWID in the opaque data; nvtrust requires the two to be equal, which
 * ties the signed measurements to this very certificate's firmware.
 */
import * as asn1js from 'asn1js';
import { ObscuraError } from '../../errors.ts';
import { bufferOf } from '../../bytes.ts';
import { findExtension, type ParsedCertificate } from '../x509/index.ts';

export const OID_NVIDIA_FWID_EXTENSION = '2.23.133.5.4.1';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
export const FWID_SHA384_BYTES = 48;

/** The certificate's FWID digest, or undefined when it has no such extension. */
export function certificateFwid(cert: ParsedCertificate): Uint8Array | undefined {
  const ext = findExtension(cert, OID_NVIDIA_FWID_EXTENSION);
  if (!ext) return undefined;
  const asn1 = asn1js.fromBER(bufferOf(ext.value));
  if (asn1.offset !== ext.value.length || !(asn1.result instanceof asn1js.Sequence)) throw malformed();
  const items = asn1.result.valueBlock.value;
  const fwid = items[items.length - 1];
  if (!(fwid instanceof asn1js.Sequence) || fwid.valueBlock.value.length !== 2) throw malformed();
  const [alg, digest] = fwid.valueBlock.value;
  if (!(alg instanceof asn1js.ObjectIdentifier) || alg.valueBlock.toString() !== OID_SHA384) throw malformed();
  if (!(digest instanceof asn1js.OctetString) || digest.valueBlock.valueHexView.length !== FWID_SHA384_BYTES) throw malformed();
  return new Uint8Array(digest.valueBlock.valueHexView);
}

function malformed(): ObscuraError {
  return new ObscuraError('ERR_MALFORMED', 'the attestation certificate FWID extension is not SEQUENCE { ..., SEQUENCE { sha384, OCTET STRING(48) } }');
}
