/**
 * An inference secret in transit, sealed with HPKE (RFC 9180): from a client to the attested service
 * (info binds the attested core's digest, so it opens only for the key that bundle vouched for), and
 * from the service to a certified worker (info binds the worker's attested HPKE key).
 */
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import { INFERENCE_SECRET_BYTES, PROTOCOL_VERSION, SECRET_ID_BYTES } from './constants.ts';
import { openBound, sealBound } from './hpke-suites.ts';

export interface SealedSecret {
  v: number;
  suite: string;
  sid: Uint8Array;
  manifestHead: Uint8Array; // the secret is released only to workers admitted under this manifest
  expiresAt: number; // ms since epoch, client clock
  enc: Uint8Array;
  ct: Uint8Array;
}

export interface SecretMetadata {
  sid: Uint8Array;
  manifestHead: Uint8Array;
  expiresAt: number;
}

function aadOf(s: Omit<SealedSecret, 'enc' | 'ct'>): Uint8Array {
  return encodeDeterministic({ v: s.v, suite: s.suite, sid: s.sid, manifestHead: s.manifestHead, expiresAt: s.expiresAt });
}

export async function sealSecret(input: {
  suite: string;
  recipientPublicKey: Uint8Array;
  label: string; // LABEL_SECRET_TO_SERVICE or LABEL_SECRET_TO_WORKER
  context: Uint8Array; // core digest, or the worker key digest
  secret: Uint8Array;
  meta: SecretMetadata;
}): Promise<SealedSecret> {
  if (input.secret.length !== INFERENCE_SECRET_BYTES) throw new ObscuraError('ERR_USAGE', 'an inference secret is 32 bytes');
  const header = { v: PROTOCOL_VERSION, suite: input.suite, ...input.meta };
  const sealed = await sealBound({ ...input, plaintext: input.secret, aad: aadOf(header) });
  return { ...header, ...sealed };
}

export async function openSecret(input: {
  sealed: SealedSecret;
  recipientKey: CryptoKey;
  label: string;
  context: Uint8Array;
}): Promise<Uint8Array> {
  const { enc, ct, ...header } = input.sealed;
  const secret = await openBound({ ...input, suite: header.suite, enc, ct, aad: aadOf(header), what: 'the sealed inference secret' });
  if (secret.length !== INFERENCE_SECRET_BYTES) throw new ObscuraError('ERR_MALFORMED', 'an inference secret is 32 bytes');
  return secret;
}

export function encodeSealedSecret(s: SealedSecret): Uint8Array {
  return encodeDeterministic({ ...s });
}

export function parseSealedSecret(bytes: Uint8Array): SealedSecret {
  const m = asRecord(decodeStrict(bytes, 'sealed secret'), 'sealed secret');
  const v = fieldInt(m, 'v', 'sealed secret');
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `sealed secret version ${v} is not supported`);
  return {
    v,
    suite: fieldString(m, 'suite', 'sealed secret'),
    sid: fieldBytes(m, 'sid', 'sealed secret', SECRET_ID_BYTES),
    manifestHead: fieldBytes(m, 'manifestHead', 'sealed secret', 32),
    expiresAt: fieldInt(m, 'expiresAt', 'sealed secret'),
    enc: fieldBytes(m, 'enc', 'sealed secret'),
    ct: fieldBytes(m, 'ct', 'sealed secret'),
  };
}
