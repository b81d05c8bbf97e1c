/**
 * GET /v1/attestation from the Cache API. A bundle is verified (vendor chain to the edge's roots,
 * report-data binding, age) before it is cached or served; a failing one is never cached, and the last
 * good one is served while a refresh runs, never past its own expiry.
 */
import { ObscuraError } from '../../shared/errors.ts';
import { BUNDLE_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { verifyBundle } from '../../shared/protocol/verify-bundle.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor } from './errors.ts';

const CACHE_KEY = 'https://obscura-edge.internal/v1/attestation';
/** Serve from cache without refreshing for this long; after it, serve stale and refresh. */
export const FRESH_FOR_MS = 60_000;
const EXPIRES_HEADER = 'obscura-bundle-expires-at';
const FETCHED_HEADER = 'obscura-fetched-at';

async function fetchVerified(env: Env, now: number): Promise<{ bytes: Uint8Array; expiresAt: number }> {
  let res: Response;
  try {
    res = await fetch(`${env.AS_URL}/v1/attestation`, { headers: { accept: BUNDLE_CONTENT_TYPE } });
  } catch {
    throw new ObscuraError('ERR_UPSTREAM', 'the attestation service is unreachable');
  }
  if (res.status !== 200) throw new ObscuraError('ERR_UPSTREAM', `the attestation service answered ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const verified = await verifyBundle(bytes, { trustedRootsPem: env.TRUSTED_ROOTS, now, maxAgeMs: Number(env.BUNDLE_MAX_AGE_MS) });
  return { bytes, expiresAt: verified.core.expiresAt };
}

function bundleResponse(bytes: Uint8Array, expiresAt: number, fetchedAt: number, cacheStatus: 'HIT' | 'MISS' | 'STALE'): Response {
  return new Response(bytes, {
    headers: {
      'content-type': BUNDLE_CONTENT_TYPE,
      'obscura-cache': cacheStatus,
      [EXPIRES_HEADER]: String(expiresAt),
      [FETCHED_HEADER]: String(fetchedAt),
      'cache-control': 'no-store',
    },
  });
}

export async function serveAttestation(env: Env, ctx: ExecutionContext, now = Date.now()): Promise<Response> {
  const cache = await caches.open('obscura-attestation');
  const cached = await cache.match(CACHE_KEY);
  if (cached) {
    const expiresAt = Number(cached.headers.get(EXPIRES_HEADER));
    const fetchedAt = Number(cached.headers.get(FETCHED_HEADER));
    if (expiresAt > now) {
      const bytes = new Uint8Array(await cached.arrayBuffer());
      if (now - fetchedAt < FRESH_FOR_MS) return bundleResponse(bytes, expiresAt, fetchedAt, 'HIT');
      ctx.waitUntil(refresh(env, cache, now).catch(() => {}));
      return bundleResponse(bytes, expiresAt, fetchedAt, 'STALE');
    }
    await cache.delete(CACHE_KEY);
  }
  try {
    const { bytes, expiresAt } = await refresh(env, cache, now);
    return bundleResponse(bytes, expiresAt, now, 'MISS');
  } catch (e) {
    return e instanceof ObscuraError && e.failureClass !== 'unavailable'
      ? errorResponse('ERR_UPSTREAM', `the attestation service's bundle failed verification at the edge (${e.code}); it was not served`)
      : responseFor(e);
  }
}

async function refresh(env: Env, cache: Cache, now: number): Promise<{ bytes: Uint8Array; expiresAt: number }> {
  const fresh = await fetchVerified(env, now);
  await cache.put(CACHE_KEY, bundleResponse(fresh.bytes, fresh.expiresAt, now, 'HIT'));
  return fresh;
}
