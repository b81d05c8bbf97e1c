/**
 * GET /v1/attestation from the Cache API, stale-while-revalidate bounded by the bundle's own life.
 *
 * - A bundle is verified (vendor chain to TRUSTED_ROOTS, report-data binding, protocol version, age)
 *   before it is cached or served. One that fails is never cached and never served.
 * - A cached bundle younger than BUNDLE_FRESH_MS (since the edge fetched it) is a HIT. An older one is
 *   served STALE while ctx.waitUntil refreshes it in the background; a refresh that fails (unreachable,
 *   not verifying, or older than the cached one) leaves the good one in place.
 * - No bundle is served at or past its serve-until: min(expires-at, issued-at + BUNDLE_MAX_AGE_MS).
 *   Then the edge fetches synchronously (MISS) and, if that fails, answers an error, never the old one.
 * - The service refusing a relayed secret with 403 (the client's bundle is no longer honoured, e.g.
 *   after a manifest update) refreshes the cached bundle at once, in the background.
 * - Nonce'd bundles (POST, per client) never touch the cache: service-relay.ts.
 */
import { ObscuraError } from '../../shared/errors.ts';
import { BUNDLE_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { verifyBundle, type VerifiedBundle } from '../../shared/protocol/verify-bundle.ts';
import { edgeConfig, upstreamFetch, type EdgeConfig } from './config.ts';
import type { Env } from './env.ts';
import { errorResponse, responseFor } from './errors.ts';

const CACHE_NAME = 'obscura-attestation';
const CACHE_KEY = 'https://obscura-edge.internal/v1/attestation';
export const CACHE_STATUS_HEADER = 'obscura-cache';
const SERVE_UNTIL_HEADER = 'obscura-bundle-serve-until';
const EXPIRES_HEADER = 'obscura-bundle-expires-at';
const ISSUED_HEADER = 'obscura-bundle-issued-at';
const FETCHED_HEADER = 'obscura-fetched-at';
/**
 * One background refresh at a time per isolate; after a failed one, the next waits this long (the
 * good bundle keeps being served meanwhile), so a broken service is not hit by every request.
 */
const REFRESH_GUARD_MS = 10_000;
const AS_TIMEOUT_MS = 15_000;

type CacheStatus = 'HIT' | 'MISS' | 'STALE';

interface GoodBundle {
  bytes: Uint8Array;
  issuedAt: number;
  expiresAt: number;
  serveUntil: number;
  fetchedAt: number;
}

let refreshStartedAt = -Infinity;

/** The bundle's last instant of service: its expiry, or the edge's age limit if that comes first. */
export function serveUntil(v: Pick<VerifiedBundle, 'core'>, maxAgeMs: number): number {
  return Math.min(v.core.expiresAt, v.core.issuedAt + maxAgeMs);
}

/** Fetch the service's nonce-less bundle and verify it; throws unless it may be served now. */
async function fetchVerified(env: Env, config: EdgeConfig): Promise<GoodBundle> {
  let res: Response;
  try {
    res = await upstreamFetch(env)(`${config.asUrl}/v1/attestation`, { headers: { accept: BUNDLE_CONTENT_TYPE }, signal: AbortSignal.timeout(AS_TIMEOUT_MS) });
  } catch {
    throw new ObscuraError('ERR_UPSTREAM', 'the attestation service is unreachable');
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new ObscuraError('ERR_UPSTREAM', `the attestation service answered ${res.status}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const now = Date.now();
  let verified: VerifiedBundle;
  try {
    verified = await verifyBundle(bytes, { trustedRootsPem: env.TRUSTED_ROOTS, now, maxAgeMs: config.bundleMaxAgeMs });
  } catch (e) {
    const code = e instanceof ObscuraError ? e.code : 'ERR_MALFORMED';
    console.error(JSON.stringify({ event: 'bundle-refused', code }));
    throw new ObscuraError('ERR_UPSTREAM', `the attestation service's bundle failed verification at the edge (${code}); it was not served`);
  }
  if (verified.core.nonce) throw new ObscuraError('ERR_UPSTREAM', "the attestation service's shared bundle carries a nonce; it was not cached");
  return { bytes, issuedAt: verified.core.issuedAt, expiresAt: verified.core.expiresAt, serveUntil: serveUntil(verified, config.bundleMaxAgeMs), fetchedAt: now };
}

function bundleHeaders(b: GoodBundle): Record<string, string> {
  return {
    'content-type': BUNDLE_CONTENT_TYPE,
    [SERVE_UNTIL_HEADER]: String(b.serveUntil),
    [EXPIRES_HEADER]: String(b.expiresAt),
    [ISSUED_HEADER]: String(b.issuedAt),
    [FETCHED_HEADER]: String(b.fetchedAt),
  };
}

function clientResponse(b: GoodBundle, status: CacheStatus): Response {
  // Clients verify and keep the bundle themselves; nothing between them and the edge should cache it.
  return new Response(b.bytes, { headers: { ...bundleHeaders(b), [CACHE_STATUS_HEADER]: status, 'cache-control': 'no-store' } });
}

async function store(cache: Cache, b: GoodBundle): Promise<void> {
  const ttlS = Math.floor((b.serveUntil - Date.now()) / 1000);
  if (ttlS < 1) return;
  // The Cache API evicts it at serve-until too; the check in serveAttestation does not rely on that.
  await cache.put(CACHE_KEY, new Response(b.bytes, { headers: { ...bundleHeaders(b), 'cache-control': `max-age=${ttlS}` } }));
}

async function readCached(cache: Cache): Promise<GoodBundle | undefined> {
  const cached = await cache.match(CACHE_KEY);
  if (!cached) return undefined;
  const num = (h: string) => Number(cached.headers.get(h));
  const b = { bytes: new Uint8Array(await cached.arrayBuffer()), serveUntil: num(SERVE_UNTIL_HEADER), expiresAt: num(EXPIRES_HEADER), issuedAt: num(ISSUED_HEADER), fetchedAt: num(FETCHED_HEADER) };
  return [b.serveUntil, b.expiresAt, b.issuedAt, b.fetchedAt].every(Number.isFinite) ? b : undefined;
}

/** Fetch, verify and cache, unless the result is older than what is cached (no rollback). */
async function refresh(env: Env, config: EdgeConfig, cache: Cache, current?: GoodBundle): Promise<GoodBundle> {
  const fresh = await fetchVerified(env, config);
  if (current && fresh.issuedAt < current.issuedAt && current.serveUntil > Date.now()) {
    throw new ObscuraError('ERR_UPSTREAM', 'the attestation service returned a bundle older than the cached one; kept the cached one');
  }
  await store(cache, fresh);
  return fresh;
}

/** Start a background refresh unless one is running or one failed in the last REFRESH_GUARD_MS. */
function refreshInBackground(env: Env, config: EdgeConfig, ctx: ExecutionContext, cache: Cache, current: GoodBundle | undefined, now: number): void {
  if (now - refreshStartedAt <= REFRESH_GUARD_MS) return;
  refreshStartedAt = now;
  ctx.waitUntil(
    refresh(env, config, cache, current)
      .then(() => (refreshStartedAt = -Infinity))
      .catch((e) => {
        refreshStartedAt = Date.now();
        console.error(JSON.stringify({ event: 'bundle-refresh-failed', message: (e as Error).message }));
      }),
  );
}

/**
 * The service refused a secret sealed against a bundle it no longer honours (403: restarted, or the
 * manifest changed): the cached bundle may be the outdated one, so refresh it now rather than at the
 * end of the fresh window. The client itself recovers with a nonce'd bundle.
 */
export async function revalidateAttestation(env: Env, ctx: ExecutionContext): Promise<void> {
  const cache = await caches.open(CACHE_NAME);
  refreshInBackground(env, edgeConfig(env), ctx, cache, await readCached(cache), Date.now());
}

export async function serveAttestation(env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = edgeConfig(env);
  const cache = await caches.open(CACHE_NAME);
  const now = Date.now();
  const cached = await readCached(cache);
  if (cached && cached.serveUntil > now) {
    if (now - cached.fetchedAt < config.bundleFreshMs) return clientResponse(cached, 'HIT');
    refreshInBackground(env, config, ctx, cache, cached, now);
    return clientResponse(cached, 'STALE');
  }
  if (cached) await cache.delete(CACHE_KEY); // past serve-until: never served again
  try {
    return clientResponse(await refresh(env, config, cache), 'MISS');
  } catch (e) {
    return e instanceof ObscuraError ? errorResponse(e.code, e.message) : responseFor(e);
  }
}
