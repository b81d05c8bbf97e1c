/**
 * The Obscura edge: the public HTTPS front. It holds no key: it serves verified attestation bundles
 * from cache and relays sealed bytes between clients, the attestation service and worker regions.
 */
import { AutoRouter, type IRequest } from 'itty-router';
import { serveAttestation } from './attestation-cache.ts';
import { authMode } from './auth.ts';
import { edgeConfig } from './config.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor } from './errors.ts';
import { servePage, servePageFile } from './page/routes.ts';
import { health, PLAINTEXT_REFUSAL, relayInference } from './relay.ts';
import { routingTable } from './regions.ts';
import { relayNonceAttestation, relaySecret, relaySecretAllowance } from './service-relay.ts';

// An uncaught error answers a generic wire error: no internal message leaves the edge.
const router = AutoRouter<IRequest, [Env, ExecutionContext]>({ catch: (e) => responseFor(e) });

router
  // Liveness and what `obscura up` reports: the auth mode, the regions, their health in this isolate.
  .get('/healthz', async (_req, env) => {
    const { routes, problems } = routingTable(env.WORKERS);
    return Response.json(
      { ok: true, auth: await authMode(env, edgeConfig(env)), regions: routes.map((r) => r.region), unhealthy: health.snapshot(), ...(problems.length ? { routingProblems: problems } : {}) },
      { headers: { 'cache-control': 'no-store' } },
    );
  })
  .get('/v1/attestation', (_req, env, ctx) => serveAttestation(env, ctx))
  // Liveness: a nonce'd bundle is per client, so it bypasses the cache.
  .post('/v1/attestation', (req, env) => relayNonceAttestation(req, env))
  .post('/v1/secrets', (req, env, ctx) => relaySecret(req, env, ctx))
  .post('/v1/secrets/allow', (req, env) => relaySecretAllowance(req, env))
  .post('/v1/inference', (req, env, ctx) => relayInference(req, env, ctx))
  // The browser chat page (it verifies and seals in the page; the edge only serves its files).
  .get('/', (_req, env) => servePage(env))
  .get('/page/:file', (req) => servePageFile(String(req.params.file)) ?? errorResponse('ERR_USAGE', 'not found'))
  // The OpenAI paths, called with plaintext: refuse and say what to use instead.
  .all('/v1/*', () => errorResponse('ERR_PLAINTEXT_REFUSED', PLAINTEXT_REFUSAL))
  .all('*', () => errorResponse('ERR_USAGE', 'not found'));

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
