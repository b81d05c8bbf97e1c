/**
 * The ciphertext relay: only a well-formed sealed envelope passes, with a fresh header set (so no
 * client-identifying header, cookie or API key reaches a worker), to a worker chosen by routing fields.
 */
import { ObscuraError } from '../../shared/errors.ts';
import { MAX_SEALED_REQUEST_BYTES, SEALED_REQUEST_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { parseSealedRequest } from '../../shared/protocol/sealed-request.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor } from './errors.ts';

export interface WorkerRoute {
  region: string;
  url: string;
}

export function workerRoutes(env: Env): WorkerRoute[] {
  try {
    const routes = JSON.parse(env.WORKERS) as WorkerRoute[];
    return Array.isArray(routes) ? routes.filter((r) => typeof r?.url === 'string') : [];
  } catch {
    return [];
  }
}

export const PLAINTEXT_REFUSAL =
  'This endpoint accepts only sealed requests. Use the Obscura SDK (createObscuraFetch) or the local client proxy (obscura proxy), which encrypt your request on your device.';

export async function relayInference(request: Request, env: Env): Promise<Response> {
  if (!(request.headers.get('content-type') ?? '').startsWith(SEALED_REQUEST_CONTENT_TYPE)) {
    return errorResponse('ERR_PLAINTEXT_REFUSED', PLAINTEXT_REFUSAL);
  }
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_SEALED_REQUEST_BYTES) return errorResponse('ERR_MALFORMED', `sealed requests are limited to ${MAX_SEALED_REQUEST_BYTES} bytes`);
  const body = new Uint8Array(await request.arrayBuffer());
  try {
    parseSealedRequest(body); // shape only: the edge holds no key
  } catch (e) {
    return responseFor(e);
  }
  const routes = workerRoutes(env);
  let lastError: unknown = new ObscuraError('ERR_NO_WORKER', 'no worker is configured for this endpoint');
  for (const route of routes) {
    try {
      const res = await fetch(`${route.url}/v1/inference`, {
        method: 'POST',
        headers: { 'content-type': SEALED_REQUEST_CONTENT_TYPE },
        body,
      });
      // Fail over only before any response byte: a 5xx from one worker may be retried on the next.
      if (res.status >= 500 && route !== routes[routes.length - 1]) {
        lastError = new ObscuraError('ERR_UPSTREAM', `region ${route.region} answered ${res.status}`);
        await res.body?.cancel();
        continue;
      }
      const headers = new Headers({ 'cache-control': 'no-store' });
      const ct = res.headers.get('content-type');
      if (ct) headers.set('content-type', ct);
      return new Response(res.body, { status: res.status, headers });
    } catch {
      lastError = new ObscuraError('ERR_UPSTREAM', `region ${route.region} is unreachable`);
    }
  }
  return responseFor(lastError);
}
