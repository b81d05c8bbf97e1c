/**
 * The ciphertext relay: only a well-formed sealed envelope passes, with a fresh header set (so no
 * client-identifying header, cookie or API key reaches a worker), to the nearest healthy region that
 * serves its model; on a connect error, a timeout or a 5xx, before any response byte was passed on,
 * the same ciphertext goes to the next region (each worker sees it once; replay checks are per worker).
 */
import { ObscuraError } from '../../shared/errors.ts';
import { MAX_SEALED_REQUEST_BYTES, SEALED_REQUEST_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { parseSealedRequest, type SealedRequest } from '../../shared/protocol/sealed-request.ts';
import { AUTH_HEADER, authenticate } from './auth.ts';
import { readLimited, declaredTooLarge } from './body.ts';
import { edgeConfig, upstreamFetch } from './config.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor, withHeaders } from './errors.ts';
import { rateLimited } from './rate-limit.ts';
import { candidates, HealthBook, routingTable, type RegionRoute } from './regions.ts';

export const PLAINTEXT_REFUSAL =
  'This endpoint accepts only sealed requests. Use the Obscura SDK (createObscuraFetch) or the local client proxy (obscura proxy), which encrypt your request on your device.';

export const REGION_HEADER = 'obscura-region';

/** Region health, per isolate. */
export const health = new HealthBook();

export async function relayInference(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  if (!(request.headers.get('content-type') ?? '').toLowerCase().startsWith(SEALED_REQUEST_CONTENT_TYPE)) {
    return errorResponse('ERR_PLAINTEXT_REFUSED', PLAINTEXT_REFUSAL);
  }
  const tooLarge = declaredTooLarge(request, MAX_SEALED_REQUEST_BYTES, 'a sealed request');
  if (tooLarge) return tooLarge;
  const config = edgeConfig(env);
  const auth = await authenticate(request, env, config);
  if (!auth.ok) return auth.response;
  const authHeaders = { [AUTH_HEADER]: auth.mode };
  const limited = await rateLimited(env.INFERENCE_RATE_LIMITER, auth.principal, 'inference');
  if (limited) return withHeaders(limited, authHeaders);

  const body = await readLimited(request, MAX_SEALED_REQUEST_BYTES, 'a sealed request');
  if (!body.ok) return withHeaders(body.response, authHeaders);
  let sealed: SealedRequest;
  try {
    sealed = parseSealedRequest(body.bytes); // shape only: the edge holds no key
  } catch (e) {
    return withHeaders(responseFor(e), authHeaders);
  }

  const { routes } = routingTable(env.WORKERS);
  const fetcher = upstreamFetch(env);
  const now = Date.now();
  for (const due of health.dueForProbe(routes, now)) ctx.waitUntil(health.probe(due, fetcher, config.regionCooldownMs));

  const cf = (request as Request<unknown, IncomingRequestCfProperties>).cf;
  const order = candidates(routes, { continent: cf?.continent, colo: cf?.colo }, sealed.routing.model, health);
  if (order.length === 0) {
    const why = routes.length === 0 ? 'no worker region is configured' : `no region serves the model ${JSON.stringify(sealed.routing.model ?? null)}`;
    return withHeaders(errorResponse('ERR_NO_WORKER', why), authHeaders);
  }

  let lastError: unknown;
  for (const [i, route] of order.entries()) {
    const isLast = i === order.length - 1;
    const outcome = await tryRegion(route, body.bytes, fetcher, config.relayHeadersTimeoutMs);
    if (outcome.kind === 'failed') {
      health.markFailure(route.region, outcome.why, Date.now(), config.regionCooldownMs);
      lastError = new ObscuraError('ERR_UPSTREAM', `no worker region could take the request (last: ${route.region} ${outcome.why})`);
      continue;
    }
    const res = outcome.response;
    if (res.status >= 500) {
      health.markFailure(route.region, `answered ${res.status}`, Date.now(), config.regionCooldownMs);
      // Fail over only before any response byte: this response is dropped unread.
      if (!isLast) {
        await res.body?.cancel().catch(() => {});
        continue;
      }
    } else health.markSuccess(route.region);
    const headers = new Headers({ 'cache-control': 'no-store', [REGION_HEADER]: route.region, ...authHeaders });
    const ct = res.headers.get('content-type');
    if (ct) headers.set('content-type', ct);
    return new Response(res.body, { status: res.status, headers });
  }
  return withHeaders(responseFor(lastError), authHeaders);
}

type Attempt = { kind: 'answered'; response: Response } | { kind: 'failed'; why: string };

/** POST the sealed bytes to one region with a fresh header set; give up if no response head comes in time. */
async function tryRegion(route: RegionRoute, body: Uint8Array, fetcher: ReturnType<typeof upstreamFetch>, timeoutMs: number): Promise<Attempt> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetcher(`${route.url}/v1/inference`, {
      method: 'POST',
      headers: { 'content-type': SEALED_REQUEST_CONTENT_TYPE },
      body,
      signal: abort.signal,
      redirect: 'manual',
    });
    return { kind: 'answered', response };
  } catch {
    return { kind: 'failed', why: abort.signal.aborted ? `gave no response head within ${timeoutMs} ms` : 'is unreachable' };
  } finally {
    clearTimeout(timer); // the head is in: the (streamed) body is never cut by the timer
  }
}
