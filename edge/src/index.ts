/**
 * The Obscura edge: the public HTTPS front. It holds no key: it serves verified attestation bundles
 * from cache and relays sealed bytes between clients, the attestation service and workers.
 */
import { AutoRouter, type IRequest } from 'itty-router';
import { SECRET_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { serveAttestation } from './attestation-cache.ts';
import type { Env } from './env.ts';
import { errorResponse } from './errors.ts';
import { PLAINTEXT_REFUSAL, relayInference } from './relay.ts';

const MAX_SECRET_SUBMISSION_BYTES = 16 * 1024;
const MAX_NONCE_REQUEST_BYTES = 1024;

async function relayToService(request: Request, env: Env, path: string, contentType: string, limitBytes: number): Promise<Response> {
  const body = await request.arrayBuffer();
  if (body.byteLength > limitBytes) return errorResponse('ERR_MALFORMED', `the body is larger than ${limitBytes} bytes`);
  try {
    const res = await fetch(`${env.AS_URL}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
    return new Response(res.body, { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/json', 'cache-control': 'no-store' } });
  } catch {
    return errorResponse('ERR_UPSTREAM', 'the attestation service is unreachable');
  }
}

const router = AutoRouter<IRequest, [Env, ExecutionContext]>();

router
  .get('/healthz', () => Response.json({ ok: true }))
  .get('/v1/attestation', (_req, env, ctx) => serveAttestation(env, ctx))
  // Liveness: a nonce'd bundle is per client, so it bypasses the cache.
  .post('/v1/attestation', (req, env) => relayToService(req, env, '/v1/attestation', 'application/cbor', MAX_NONCE_REQUEST_BYTES))
  .post('/v1/secrets', (req, env) =>
    (req.headers.get('content-type') ?? '').startsWith(SECRET_CONTENT_TYPE)
      ? relayToService(req, env, '/v1/secrets', SECRET_CONTENT_TYPE, MAX_SECRET_SUBMISSION_BYTES)
      : errorResponse('ERR_PLAINTEXT_REFUSED', `secrets must be HPKE-sealed (${SECRET_CONTENT_TYPE}); use the Obscura SDK`),
  )
  .post('/v1/inference', (req, env) => relayInference(req, env))
  // The OpenAI paths, called with plaintext: refuse and say what to use instead.
  .all('/v1/*', () => errorResponse('ERR_PLAINTEXT_REFUSED', PLAINTEXT_REFUSAL))
  .all('*', () => errorResponse('ERR_USAGE', 'not found'));

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
