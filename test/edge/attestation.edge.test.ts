/**
 * The edge's attestation bundle cache, in workerd (the built worker under Miniflare), against a fake
 * attestation service on 127.0.0.1 serving real bundles from the simulated TEE.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeDeterministic } from '../../shared/cbor.ts';
import { randomBytes } from '../../shared/bytes.ts';
import { Bundles, CLIENT_IDENTIFYING, FakeAttestationService, sleep, startEdge, until, type RunningEdge } from './fixtures.ts';

let bundles: Bundles;
let as: FakeAttestationService;
let edge: RunningEdge | undefined;

beforeAll(async () => {
  bundles = await Bundles.create();
  as = await new FakeAttestationService().start();
}, 180_000);

afterAll(async () => {
  await as?.stop();
});

afterEach(async () => {
  await edge?.dispose();
  edge = undefined;
  as.requests.length = 0;
  as.nonceBundle = undefined;
  as.refuseSecrets = false;
});

async function start(vars: Record<string, string> = {}): Promise<RunningEdge> {
  edge = await startEdge({ vars: { AS_URL: as.url, TRUSTED_ROOTS: bundles.rootPem, ...vars } });
  return edge;
}

async function get(e: RunningEdge): Promise<{ status: number; cache: string | null; bytes: Buffer; json?: { error: { code: string; message: string } } }> {
  const res = await e.fetch('/v1/attestation');
  const bytes = Buffer.from(await res.arrayBuffer());
  const json = (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(bytes.toString()) : undefined;
  return { status: res.status, cache: res.headers.get('obscura-cache'), bytes, json };
}

const asGets = () => as.count('GET', '/v1/attestation');

describe('GET /v1/attestation', () => {
  it('caches a verified bundle: a hit answers without calling the attestation service', async () => {
    as.bundle = await bundles.fresh();
    const e = await start();
    const first = await get(e);
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    expect(first.bytes.equals(Buffer.from(as.bundle))).toBe(true);
    expect(asGets()).toBe(1);
    for (let i = 0; i < 3; i++) {
      const hit = await get(e);
      expect(hit.status).toBe(200);
      expect(hit.cache).toBe('HIT');
      expect(hit.bytes.equals(first.bytes)).toBe(true);
    }
    expect(asGets()).toBe(1);
  });

  for (const [name, make, code] of [
    ['tampered (core changed after attestation)', () => bundles.tampered(), 'ERR_VALUE_MISMATCH'],
    ['signed under an untrusted root', () => bundles.untrustedRoot(), 'ERR_'],
    ['expired', () => bundles.expired(), 'ERR_EXPIRED'],
    ['older than BUNDLE_MAX_AGE_MS', () => bundles.fresh(11 * 60_000), 'ERR_EXPIRED'],
  ] as const) {
    it(`never caches or serves a bundle ${name}`, async () => {
      as.bundle = await make();
      const e = await start();
      for (let i = 1; i <= 2; i++) {
        const r = await get(e);
        expect(r.status).toBe(503);
        expect(r.json?.error.code).toBe('ERR_UPSTREAM');
        expect(r.json?.error.message).toContain(code);
        expect(r.bytes.includes(Buffer.from(as.bundle))).toBe(false);
        expect(asGets()).toBe(i); // not cached: every request goes back to the service
      }
    });
  }

  it('serves STALE after the fresh window and refreshes in the background', async () => {
    const a = await bundles.fresh();
    as.bundle = a;
    const e = await start({ BUNDLE_FRESH_MS: '300' });
    expect((await get(e)).cache).toBe('MISS');
    expect((await get(e)).cache).toBe('HIT');
    await sleep(400);
    const b = await bundles.fresh();
    as.bundle = b;
    const stale = await get(e);
    expect(stale.cache).toBe('STALE');
    expect(stale.bytes.equals(Buffer.from(a))).toBe(true); // the good one, at once
    await until(() => asGets() === 2 || undefined, 'the background refresh');
    const refreshed = await until(async () => {
      const r = await get(e);
      return r.bytes.equals(Buffer.from(b)) ? r : undefined;
    }, 'the refreshed bundle to be served');
    expect(refreshed.cache).toBe('HIT');
    expect(asGets()).toBe(2);
  });

  it('keeps the good bundle when a background refresh fails verification', async () => {
    const good = await bundles.fresh();
    as.bundle = good;
    const e = await start({ BUNDLE_FRESH_MS: '200' });
    expect((await get(e)).cache).toBe('MISS');
    await sleep(300);
    as.bundle = await bundles.tampered();
    const stale = await get(e);
    expect(stale.cache).toBe('STALE');
    await until(() => asGets() === 2 || undefined, 'the background refresh');
    await sleep(300);
    for (let i = 0; i < 3; i++) {
      const r = await get(e);
      expect(r.status).toBe(200);
      expect(r.cache).toBe('STALE');
      expect(r.bytes.equals(Buffer.from(good))).toBe(true);
    }
    expect(asGets()).toBe(2); // a failed refresh backs off: the broken service is not called per request
  });

  it('keeps the cached bundle when a refresh returns an older (rolled-back) one', async () => {
    const newer = await bundles.fresh();
    as.bundle = newer;
    const e = await start({ BUNDLE_FRESH_MS: '200' });
    await get(e);
    await sleep(300);
    as.bundle = await bundles.fresh(60_000); // valid, but issued before the cached one
    expect((await get(e)).cache).toBe('STALE');
    await until(() => asGets() === 2 || undefined, 'the background refresh');
    await sleep(200);
    expect((await get(e)).bytes.equals(Buffer.from(newer))).toBe(true);
  });

  it('never serves a cached bundle past its expiry, even when the refresh fails', async () => {
    const e = await start({ BUNDLE_FRESH_MS: '100000' });
    as.bundle = await bundles.expiringIn(1_500);
    expect((await get(e)).cache).toBe('MISS');
    expect((await get(e)).cache).toBe('HIT');
    as.bundle = await bundles.tampered();
    await sleep(1_700);
    const r = await get(e);
    expect(r.status).toBe(503);
    expect(r.json?.error.code).toBe('ERR_UPSTREAM');
    as.bundle = await bundles.fresh();
    const again = await get(e);
    expect(again.cache).toBe('MISS');
    expect(again.bytes.equals(Buffer.from(as.bundle))).toBe(true);
  });

  it('never serves a cached bundle past issued-at + BUNDLE_MAX_AGE_MS', async () => {
    const e = await start({ BUNDLE_FRESH_MS: '100000', BUNDLE_MAX_AGE_MS: '1500' });
    as.bundle = await bundles.fresh();
    expect((await get(e)).cache).toBe('MISS');
    await sleep(1_700);
    const r = await get(e);
    expect(r.status).toBe(503);
    expect(r.json?.error.message).toContain('ERR_EXPIRED'); // the service still serves the same, now too old
    expect(asGets()).toBe(2);
  });
});

describe('POST /v1/attestation (nonce)', () => {
  it('bypasses the cache, verifies the nonce-bound bundle, and leaves the cached one alone', async () => {
    as.bundle = await bundles.fresh();
    const e = await start();
    await get(e); // cache the shared bundle
    const nonce = randomBytes(32);
    const nonced = await bundles.withNonce(nonce);
    as.nonceBundle = () => nonced;
    for (let i = 1; i <= 2; i++) {
      const res = await e.fetch('/v1/attestation', { method: 'POST', headers: { 'content-type': 'application/cbor', ...CLIENT_IDENTIFYING }, body: encodeDeterministic({ nonce }) });
      expect(res.status).toBe(200);
      expect(res.headers.get('obscura-cache')).toBeNull();
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(nonced))).toBe(true);
      expect(as.count('POST', '/v1/attestation')).toBe(i);
    }
    const posted = as.requests.filter((r) => r.method === 'POST');
    for (const r of posted) for (const h of Object.keys(CLIENT_IDENTIFYING)) expect(r.headers[h]).toBeUndefined();
    const cached = await get(e);
    expect(cached.cache).toBe('HIT');
    expect(cached.bytes.equals(Buffer.from(as.bundle))).toBe(true);
    expect(asGets()).toBe(1);
  });

  it('refuses a bundle bound to another nonce', async () => {
    const other = await bundles.withNonce(randomBytes(32));
    as.nonceBundle = () => other;
    const e = await start();
    const res = await e.fetch('/v1/attestation', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body: encodeDeterministic({ nonce: randomBytes(32) }) });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('ERR_VALUE_MISMATCH');
  });
});

describe('POST /v1/secrets', () => {
  it('relays the sealed secret with a fresh header set', async () => {
    const e = await start();
    const body = randomBytes(300);
    const res = await e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/obscura-secret+cbor', ...CLIENT_IDENTIFYING }, body });
    expect(res.status).toBe(201);
    const [r] = as.requests;
    expect(r.path).toBe('/v1/secrets');
    expect(r.body.equals(Buffer.from(body))).toBe(true);
    for (const h of Object.keys(CLIENT_IDENTIFYING)) expect(r.headers[h]).toBeUndefined();
    expect(JSON.stringify(r.headers)).not.toContain('client-key-that-must-not-travel');
  });

  it('refreshes the cached bundle at once when the service refuses a secret as sealed against an old bundle', async () => {
    const before = await bundles.fresh();
    as.bundle = before;
    const e = await start(); // fresh for 60 s: only the refusal can make it refresh now
    expect((await get(e)).cache).toBe('MISS');
    as.bundle = await bundles.fresh(); // e.g. after a manifest update
    as.refuseSecrets = true;
    const res = await e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/obscura-secret+cbor' }, body: randomBytes(100) });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_VALUE_MISMATCH');
    const after = await until(async () => {
      const r = await get(e);
      return r.bytes.equals(Buffer.from(as.bundle)) ? r : undefined;
    }, 'the cached bundle to be replaced');
    expect(after.cache).toBe('HIT');
    expect(asGets()).toBe(2);
  });

  it('refuses an unsealed or oversized secret before calling the service', async () => {
    const e = await start();
    const plain = await e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"secret":"x"}' });
    expect(plain.status).toBe(415);
    const big = await e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/obscura-secret+cbor' }, body: randomBytes(17 * 1024) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('ERR_TOO_LARGE');
    expect(as.requests).toHaveLength(0);
  });
});

describe('POST /v1/secrets/allow', () => {
  it('relays a secret allowance as it is, with a fresh header set; anything else is refused before the service', async () => {
    const e = await start();
    const body = randomBytes(120);
    const res = await e.fetch('/v1/secrets/allow', { method: 'POST', headers: { 'content-type': 'application/vnd.obscura.secret-allowance+cbor', ...CLIENT_IDENTIFYING }, body });
    expect(res.status).toBe(200);
    const [r] = as.requests;
    expect([r.path, r.headers['content-type']]).toEqual(['/v1/secrets/allow', 'application/vnd.obscura.secret-allowance+cbor']);
    expect(r.body.equals(Buffer.from(body))).toBe(true);
    for (const h of Object.keys(CLIENT_IDENTIFYING)) expect(r.headers[h]).toBeUndefined();
    const wrongType = await e.fetch('/v1/secrets/allow', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect([wrongType.status, ((await wrongType.json()) as { error: { code: string } }).error.code]).toEqual([400, 'ERR_MALFORMED']);
    const big = await e.fetch('/v1/secrets/allow', { method: 'POST', headers: { 'content-type': 'application/vnd.obscura.secret-allowance+cbor' }, body: randomBytes(2048) });
    expect(big.status).toBe(413);
    expect(as.requests).toHaveLength(1);
  });
});
