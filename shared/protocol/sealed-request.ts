/**
 * The sealed request envelope (CBOR). Only routing fields, method, path and protocol metadata are
 * visible; they are all in the AES-GCM associated data, so changing any of them breaks the seal.
 */
import { bufferOf, randomBytes } from '../bytes.ts';
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes, fieldInt, fieldString } from '../cbor.ts';
import { ObscuraError } from '../errors.ts';
import {
  MAX_SEALED_REQUEST_BYTES,
  PROTOCOL_VERSION,
  REQUEST_SALT_BYTES,
  ROUTING_FIELDS,
  SECRET_ID_BYTES,
  type RoutingFields,
} from './constants.ts';
import { pad, unpad } from './padding.ts';
import { withRequestKeys, type RequestKeys } from './request-keys.ts';

/** Names the key schedule (one HKDF key block per request) and the AEAD; a client on another one is told so. */
export const REQUEST_SUITE = 'hkdf-sha256-keyblock/aes-256-gcm';

/** What anyone on the path can read (and nobody can change). */
export interface SealedRequestHeader {
  v: number;
  suite: string;
  sid: Uint8Array; // inference secret id
  salt: Uint8Array; // fresh per request: key derivation input and replay id
  ts: number; // client clock, ms since epoch
  method: string;
  path: string;
  routing: RoutingFields;
}

export interface SealedRequest extends SealedRequestHeader {
  ct: Uint8Array;
}

export interface OpenedRequest {
  header: SealedRequestHeader;
  body: Uint8Array; // the plaintext body with routing fields removed (see mergeRoutingFields)
  keys: RequestKeys;
}

/** The associated data: every visible field (routing included), so none can change without breaking the seal. */
function aadOf(h: SealedRequestHeader): Uint8Array {
  return encodeDeterministic({ v: h.v, suite: h.suite, sid: h.sid, salt: h.salt, ts: h.ts, method: h.method, path: h.path, routing: h.routing });
}

/** The envelope's bytes: the header's fields and the ciphertext in one deterministic CBOR map. */
export function encodeSealedRequest(s: SealedRequest): Uint8Array {
  return encodeDeterministic({ v: s.v, suite: s.suite, sid: s.sid, salt: s.salt, ts: s.ts, method: s.method, path: s.path, routing: s.routing, ct: s.ct });
}

export interface SealRequestInput {
  secretKey: CryptoKey;
  secretId: Uint8Array;
  method: string;
  path: string;
  routing: RoutingFields;
  body: Uint8Array;
  now: number;
  paddingBuckets?: readonly number[];
}

export async function sealRequest(input: SealRequestInput): Promise<{ bytes: Uint8Array; keys: RequestKeys; header: SealedRequestHeader }> {
  const header: SealedRequestHeader = {
    v: PROTOCOL_VERSION,
    suite: REQUEST_SUITE,
    sid: input.secretId,
    salt: randomBytes(REQUEST_SALT_BYTES),
    ts: input.now,
    method: input.method,
    path: input.path,
    routing: input.routing,
  };
  const { keys, result: ct } = await withRequestKeys(input.secretKey, header.salt, async (requestKey, requestIv) =>
    new Uint8Array(
      await crypto.subtle.encrypt({ name: 'AES-GCM', iv: bufferOf(requestIv), additionalData: bufferOf(aadOf(header)) }, requestKey, bufferOf(pad(input.body, input.paddingBuckets))),
    ),
  );
  return { bytes: encodeSealedRequest({ ...header, ct }), keys, header };
}

/** Parse the envelope without opening it: what the edge and the worker read before any key is used. */
export function parseSealedRequest(bytes: Uint8Array): SealedRequest {
  if (bytes.length > MAX_SEALED_REQUEST_BYTES) throw new ObscuraError('ERR_MALFORMED', 'sealed request is larger than the limit');
  const m = asRecord(decodeStrict(bytes, 'sealed request'), 'sealed request');
  const v = fieldInt(m, 'v', 'sealed request');
  if (v !== PROTOCOL_VERSION) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `sealed request version ${v} is not supported`);
  const suite = fieldString(m, 'suite', 'sealed request');
  if (suite !== REQUEST_SUITE) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `sealed request suite ${suite} is not supported`);
  const routing = asRecord(m.routing, 'sealed request.routing');
  for (const key of Object.keys(routing)) {
    if (!(ROUTING_FIELDS as readonly string[]).includes(key)) {
      throw new ObscuraError('ERR_MALFORMED', `sealed request.routing.${key} is not a routing field`);
    }
  }
  const path = fieldString(m, 'path', 'sealed request');
  if (!path.startsWith('/')) throw new ObscuraError('ERR_MALFORMED', 'sealed request.path must start with /');
  return {
    v,
    suite,
    sid: fieldBytes(m, 'sid', 'sealed request', SECRET_ID_BYTES),
    salt: fieldBytes(m, 'salt', 'sealed request', REQUEST_SALT_BYTES),
    ts: fieldInt(m, 'ts', 'sealed request'),
    method: fieldString(m, 'method', 'sealed request'),
    path,
    routing: routing as RoutingFields,
    ct: fieldBytes(m, 'ct', 'sealed request'),
  };
}

export async function openRequest(sealed: SealedRequest, secretKey: CryptoKey): Promise<OpenedRequest> {
  const { ct, ...header } = sealed;
  const { keys, result: padded } = await withRequestKeys(secretKey, header.salt, async (requestKey, requestIv) => {
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bufferOf(requestIv), additionalData: bufferOf(aadOf(header)) }, requestKey, bufferOf(ct)));
    } catch (cause) {
      throw new ObscuraError('ERR_OPEN_FAILED', 'sealed request does not open: wrong secret, or bytes were changed', { cause });
    }
  });
  return { header, body: unpad(padded), keys };
}

/** Split an OpenAI JSON body into routing fields (plaintext) and the rest (sealed). */
export function splitRoutingFields(body: Record<string, unknown>): { routing: RoutingFields; rest: Record<string, unknown> } {
  const routing: RoutingFields = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if ((ROUTING_FIELDS as readonly string[]).includes(k)) {
      if (v !== undefined) routing[k as keyof RoutingFields] = v;
    } else rest[k] = v;
  }
  return { routing, rest };
}

export function mergeRoutingFields(rest: Record<string, unknown>, routing: RoutingFields): Record<string, unknown> {
  return { ...rest, ...routing };
}
