/**
 * A model key in transit, sealed with HPKE (RFC 9180): from an owner to the attested service (info
 * binds the attested core's digest) and from the service to a certified worker (info binds the
 * worker's attested HPKE key). The weights digest is in the associated data, so a key sealed for one
 * model cannot be passed off as another's.
 */
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import type { OwnerRequestFields } from '../manifest/owner-request.ts';
import { PROTOCOL_VERSION } from './constants.ts';
import { openBound, sealBound } from './hpke-suites.ts';

export const MODEL_KEY_BYTES = 32;

export interface SealedModelKey {
  v: number;
  suite: string;
  weightsDigest: string; // sha256:HEX of the plaintext weights
  enc: Uint8Array;
  ct: Uint8Array;
}

const aadOf = (s: Pick<SealedModelKey, 'v' | 'suite' | 'weightsDigest'>) => encodeDeterministic({ v: s.v, suite: s.suite, weightsDigest: s.weightsDigest });

export async function sealModelKey(input: {
  suite: string;
  recipientPublicKey: Uint8Array;
  label: string; // LABEL_MODEL_KEY_TO_SERVICE or LABEL_MODEL_KEY_TO_WORKER
  context: Uint8Array; // core digest, or the worker key digest
  key: Uint8Array;
  weightsDigest: string;
}): Promise<SealedModelKey> {
  if (input.key.length !== MODEL_KEY_BYTES) throw new ObscuraError('ERR_USAGE', `a model key is ${MODEL_KEY_BYTES} bytes`);
  const header = { v: PROTOCOL_VERSION, suite: input.suite, weightsDigest: input.weightsDigest };
  const sealed = await sealBound({ ...input, plaintext: input.key, aad: aadOf(header) });
  return { ...header, ...sealed };
}

export async function openModelKey(input: { sealed: SealedModelKey; recipientKey: CryptoKey; label: string; context: Uint8Array }): Promise<Uint8Array> {
  const { enc, ct, ...header } = input.sealed;
  if (header.v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `sealed model key version ${header.v} is not supported`);
  const key = await openBound({ ...input, suite: header.suite, enc, ct, aad: aadOf(header), what: 'the sealed model key' });
  if (key.length !== MODEL_KEY_BYTES) throw new ObscuraError('ERR_MALFORMED', `a model key is ${MODEL_KEY_BYTES} bytes`);
  return key;
}

export function encodeSealedModelKey(s: SealedModelKey): Uint8Array {
  return encodeDeterministic({ ...s });
}

export function parseSealedModelKey(bytes: Uint8Array): SealedModelKey {
  const m = asRecord(decodeStrict(bytes, 'sealed model key'), 'sealed model key');
  return {
    v: fieldInt(m, 'v', 'sealed model key'),
    suite: fieldString(m, 'suite', 'sealed model key'),
    weightsDigest: fieldString(m, 'weightsDigest', 'sealed model key'),
    enc: fieldBytes(m, 'enc', 'sealed model key'),
    ct: fieldBytes(m, 'ct', 'sealed model key'),
  };
}

/** What an owner signs to hand a model key to the service (see owner-request.ts). */
export function modelKeyUploadFields(input: { sealed: SealedModelKey; coreDigest: Uint8Array; timestamp: number; manifestHead: Uint8Array }): OwnerRequestFields {
  return {
    timestamp: input.timestamp,
    manifestHead: input.manifestHead,
    weightsDigest: input.sealed.weightsDigest,
    suite: input.sealed.suite,
    coreDigest: input.coreDigest,
    enc: input.sealed.enc,
    ct: input.sealed.ct,
  };
}
