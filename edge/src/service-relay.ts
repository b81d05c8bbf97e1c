/**
 * Relays to the attestation service, uncached, with a fresh header set (no client header, cookie or
 * API key is passed on):
 * - POST /v1/attestation: a nonce'd bundle for one client (liveness). It bypasses the cache, and is
 *   verified here like the shared one (and must carry the client's nonce) before it is passed back.
 * - POST /v1/secrets: an HPKE-sealed inference secret; the edge cannot open it. A 403 from the service
 *   (the secret was sealed against a bundle it no longer honours) refreshes the cached bundle.
 * - POST /v1/secrets/allow: a client's MAC'd allowance for its secret to follow a later manifest; the
 *   edge cannot make one (it needs the secret), only pass it on.
 */
import { asRecord, decodeStrict, encodeDeterministic, fieldBytes } from '../../shared/cbor.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { BUNDLE_CONTENT_TYPE, SECRET_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { SECRET_ALLOWANCE_CONTENT_TYPE } from '../../shared/protocol/secret-allowance.ts';
import { verifyBundle } from '../../shared/protocol/verify-bundle.ts';
import { revalidateAttestation } from './attestation-cache.ts';
import { AUTH_HEADER, authenticate } from './auth.ts';
import { declaredTooLarge, readLimited } from './body.ts';
import { edgeConfig, upstreamFetch, type EdgeConfig } from './config.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor, withHeaders } from './errors.ts';
import { rateLimited } from './rate-limit.ts';

export const MAX_SECRET_SUBMISSION_BYTES = 16 * 1024;
export const MAX_NONCE_REQUEST_BYTES = 1024;
export const MAX_SECRET_ALLOWANCE_BYTES = 1024;
const AS_TIMEOUT_MS = 30_000;

interface ServiceCall {
  path: '/v1/attestation' | '/v1/secrets' | '/v1/secrets/allow';
  what: string;
  contentType: string;
  limitBytes: number;
}

/** Auth, rate limit and body limit for a call to the service; then `send` with the body. */
async function guarded(request: Request, env: Env, call: ServiceCall, send: (body: Uint8Array, config: EdgeConfig) => Promise<Response>): Promise<Response> {
  const tooLarge = declaredTooLarge(request, call.limitBytes, call.what);
  if (tooLarge) return tooLarge;
  const config = edgeConfig(env);
  const auth = await authenticate(request, env, config);
  if (!auth.ok) return auth.response;
  const authHeaders = { [AUTH_HEADER]: auth.mode };
  const limited = await rateLimited(env.SERVICE_RATE_LIMITER, auth.principal, call.what);
  if (limited) return withHeaders(limited, authHeaders);
  const body = await readLimited(request, call.limitBytes, call.what);
  if (!body.ok) return withHeaders(body.response, authHeaders);
  try {
    return withHeaders(await send(body.bytes, config), authHeaders);
  } catch (e) {
    return withHeaders(responseFor(e), authHeaders);
  }
}

async function post(env: Env, config: EdgeConfig, call: ServiceCall, body: Uint8Array): Promise<Response> {
  try {
    return await upstreamFetch(env)(`${config.asUrl}${call.path}`, {
      method: 'POST',
      headers: { 'content-type': call.contentType },
      body,
      signal: AbortSignal.timeout(AS_TIMEOUT_MS),
      redirect: 'manual',
    });
  } catch {
    throw new ObscuraError('ERR_UPSTREAM', 'the attestation service is unreachable');
  }
}

function passBack(res: Response, body: BodyInit | null): Response {
  return new Response(body, { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/json', 'cache-control': 'no-store' } });
}

export function relaySecret(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> | Response {
  if (!(request.headers.get('content-type') ?? '').toLowerCase().startsWith(SECRET_CONTENT_TYPE)) {
    return errorResponse('ERR_PLAINTEXT_REFUSED', `secrets must be HPKE-sealed (${SECRET_CONTENT_TYPE}); use the Obscura SDK`);
  }
  const call: ServiceCall = { path: '/v1/secrets', what: 'a secret submission', contentType: SECRET_CONTENT_TYPE, limitBytes: MAX_SECRET_SUBMISSION_BYTES };
  return guarded(request, env, call, async (body, config) => {
    const res = await post(env, config, call, body);
    if (res.status === 403) await revalidateAttestation(env, ctx);
    return passBack(res, res.body);
  });
}

export function relaySecretAllowance(request: Request, env: Env): Promise<Response> | Response {
  if (!(request.headers.get('content-type') ?? '').toLowerCase().startsWith(SECRET_ALLOWANCE_CONTENT_TYPE)) {
    return errorResponse('ERR_MALFORMED', `a secret allowance is ${SECRET_ALLOWANCE_CONTENT_TYPE}; use the Obscura SDK`);
  }
  const call: ServiceCall = { path: '/v1/secrets/allow', what: 'a secret allowance', contentType: SECRET_ALLOWANCE_CONTENT_TYPE, limitBytes: MAX_SECRET_ALLOWANCE_BYTES };
  return guarded(request, env, call, async (body, config) => {
    const res = await post(env, config, call, body);
    return passBack(res, res.body);
  });
}

export function relayNonceAttestation(request: Request, env: Env): Promise<Response> {
  const call: ServiceCall = { path: '/v1/attestation', what: 'an attestation request', contentType: 'application/cbor', limitBytes: MAX_NONCE_REQUEST_BYTES };
  return guarded(request, env, call, async (body, config) => {
    const nonce = fieldBytes(asRecord(decodeStrict(body, 'attestation request'), 'attestation request'), 'nonce', 'attestation request');
    // Only the nonce goes on, re-encoded: nothing else the client put in the request reaches the service.
    const res = await post(env, config, call, encodeDeterministic({ nonce }));
    if (res.status !== 200) return passBack(res, res.body); // the service's own error
    const bytes = new Uint8Array(await res.arrayBuffer());
    try {
      await verifyBundle(bytes, { trustedRootsPem: env.TRUSTED_ROOTS, now: Date.now(), maxAgeMs: config.bundleMaxAgeMs, expectedNonce: nonce });
    } catch (e) {
      const code = e instanceof ObscuraError ? e.code : 'ERR_MALFORMED';
      throw new ObscuraError('ERR_UPSTREAM', `the attestation service's bundle failed verification at the edge (${code}); it was not served`);
    }
    return new Response(bytes, { headers: { 'content-type': BUNDLE_CONTENT_TYPE, 'cache-control': 'no-store' } });
  });
}
