/**
 * Administrative requests signed by an owner of the current manifest (e.g. revoking a worker): ECDSA
 * P-256 over the deterministic CBOR of {purpose, ...fields}. The fields always carry a timestamp and
 * the manifest head the owner saw, so a captured request is refused once it is old or the manifest
 * has moved on.
 */
import { bufferOf, equalBytes } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { importOwnerKey } from './chain.ts';
import type { Manifest } from './schema.ts';

export const OWNER_REQUEST_MAX_SKEW_MS = 5 * 60_000;
export const PURPOSE_WORKER_REVOKE = 'obscura/v1 worker revoke';
export const PURPOSE_MODEL_KEY_UPLOAD = 'obscura/v1 model key upload';

export interface OwnerRequestFields {
  timestamp: number; // ms since epoch, the owner's clock
  manifestHead: Uint8Array; // the head the owner signed against
  [field: string]: unknown;
}

export function ownerRequestSigningInput(purpose: string, fields: OwnerRequestFields): Uint8Array {
  return encodeDeterministic({ ...fields, purpose });
}

export async function signOwnerRequest(privateKey: CryptoKey, purpose: string, fields: OwnerRequestFields): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, bufferOf(ownerRequestSigningInput(purpose, fields))));
}

/** Check an owner request against the current manifest and head; returns the owner id on success. */
export async function verifyOwnerRequest(input: {
  manifest: Manifest | undefined;
  head: Uint8Array;
  ownerId: string;
  purpose: string;
  fields: OwnerRequestFields;
  signature: Uint8Array | undefined;
  now: number;
}): Promise<string> {
  if (!input.manifest) throw new ObscuraError('ERR_USAGE', 'no manifest is set, so there is no owner to authorise this');
  if (!input.signature || input.signature.length === 0) throw new ObscuraError('ERR_SIGNATURE_INVALID', 'the request is not signed by an owner');
  const owner = input.manifest.owners.find((o) => o.id === input.ownerId);
  if (!owner) throw new ObscuraError('ERR_POLICY_VIOLATION', `"${input.ownerId}" is not an owner of the current manifest`);
  const ok = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    await importOwnerKey(owner.publicKeyJwk),
    bufferOf(input.signature),
    bufferOf(ownerRequestSigningInput(input.purpose, input.fields)),
  );
  if (!ok) throw new ObscuraError('ERR_SIGNATURE_INVALID', `the request is not signed by owner "${input.ownerId}"`);
  if (Math.abs(input.now - input.fields.timestamp) > OWNER_REQUEST_MAX_SKEW_MS) {
    throw new ObscuraError('ERR_EXPIRED', `the signed request's timestamp is more than ${OWNER_REQUEST_MAX_SKEW_MS / 60_000} minutes from the service's clock: sign a fresh one`);
  }
  if (!equalBytes(input.fields.manifestHead, input.head)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', 'the request was signed against another manifest head than the current one: sign a fresh one');
  }
  return owner.id;
}
