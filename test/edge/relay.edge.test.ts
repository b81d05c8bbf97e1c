/**
 * The edge's ciphertext relay, API keys, limits and region routing, in workerd (the built worker
 * under Miniflare), against fake worker regions on 127.0.0.1 that record what they receive.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CLIENT_IDENTIFYING, FakeWorker, SEALED, sealedRequest, sleep, startEdge, until, type EdgeOptions, type RunningEdge } from './fixtures.ts';

const eu = new FakeWorker('eu-west');
const na = new FakeWorker('us-east');
let edge: RunningEdge | undefined;

beforeAll(async () => {
  await eu.start();
  await na.start();
}, 60_000);

afterAll(async () => {
  await eu.stop();
  await na.stop();
});

beforeEach(async () => {
  eu.mode = 'ok';
  na.mode = 'ok';
  eu.requests.length = 0;
  na.requests.length = 0;
  await eu.start().catch(() => {}); // a test may have stopped it
});

afterEach(async () => {
  await edge?.dispose();
  edge = undefined;
});

const routes = () =>
  JSON.stringify([
    { region: 'eu-west', url: eu.url, continent: 'EU', colos: ['FRA'] },
    { region: 'us-east', url: na.url, continent: 'NA', colos: ['IAD'] },
  ]);

async function start(opts: EdgeOptions = {}): Promise<RunningEdge> {
  edge = await startEdge({ ...opts, vars: { WORKERS: routes(), ...opts.vars } });
  return edge;
}

const FROM_EU = { continent: 'EU', colo: 'CDG' };
const FROM_NA = { continent: 'NA', colo: 'ORD' };

async function infer(e: RunningEdge, opts: { cf?: Record<string, unknown>; headers?: Record<string, string>; body?: Uint8Array } = {}) {
  const res = await e.fetch('/v1/inference', { method: 'POST', headers: { 'content-type': SEALED, ...opts.headers }, body: opts.body ?? (await sealedRequest()), cf: opts.cf ?? FROM_EU });
  const text = await res.text();
  return { res, status: res.status, text, region: res.headers.get('obscura-region'), json: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : undefined };
}

describe('sealed requests only', () => {
  it('refuses plaintext bodies with a 415 JSON error and a hint, without contacting a worker', async () => {
    const e = await start();
    for (const [path, ct] of [
      ['/v1/inference', 'application/json'],
      ['/v1/chat/completions', 'application/json'],
      ['/v1/inference', 'text/plain'],
    ]) {
      const res = await e.fetch(path, { method: 'POST', headers: { 'content-type': ct }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
      expect(res.status).toBe(415);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('ERR_PLAINTEXT_REFUSED');
      expect(body.error.message).toMatch(/SDK|client proxy/);
    }
    expect(eu.requests.length + na.requests.length).toBe(0);
  });

  it('refuses a body labelled sealed that is not a sealed envelope', async () => {
    const e = await start();
    const r = await infer(e, { body: new TextEncoder().encode('{"messages":[]}') });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('ERR_MALFORMED');
    expect(eu.requests.length + na.requests.length).toBe(0);
  });

  it('refuses a sealed request over the size limit (declared or streamed) with 413', async () => {
    const e = await start();
    const big = new Uint8Array(8 * 1024 * 1024 + 1);
    const declared = await infer(e, { body: big });
    expect(declared.status).toBe(413);
    expect(declared.json.error.code).toBe('ERR_TOO_LARGE');
    // No Content-Length: the edge stops reading once past the limit.
    const chunk = new Uint8Array(1024 * 1024);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 9) c.enqueue(chunk);
        else c.close();
      },
    });
    const res = await e.fetch('/v1/inference', { method: 'POST', headers: { 'content-type': SEALED }, body: stream, duplex: 'half' } as never);
    expect(res.status).toBe(413);
    expect(eu.requests.length + na.requests.length).toBe(0);
  });
});

describe('what reaches a worker', () => {
  it('only the sealed bytes and a fresh header set: no client-identifying header, cookie or key', async () => {
    const e = await start();
    const body = await sealedRequest();
    const r = await infer(e, { body, headers: { ...CLIENT_IDENTIFYING, 'user-agent': 'client-agent/1.0', 'x-app-user': 'alice@example.com', referer: 'https://app.example.com/chat' } });
    expect(r.status).toBe(200);
    expect(r.text).toBe('sealed answer from eu-west');
    const [got] = eu.inferences();
    expect(got.body.equals(Buffer.from(body))).toBe(true);
    for (const h of [...Object.keys(CLIENT_IDENTIFYING), 'x-app-user', 'referer']) expect(got.headers[h], h).toBeUndefined();
    expect(got.headers['user-agent'] ?? '').not.toContain('client-agent');
    const raw = JSON.stringify(got.headers);
    for (const v of ['203.0.113.7', 's3cr3t-cookie', 'client-key-that-must-not-travel', 'alice@example.com']) expect(raw).not.toContain(v);
    expect(got.headers['content-type']).toBe(SEALED);
    // Exactly what the edge set, plus what HTTP and the platform add (cf-worker: the edge's own zone).
    expect(Object.keys(got.headers).sort()).toEqual(expect.arrayContaining(['content-type', 'host']));
    for (const h of Object.keys(got.headers)) expect(['content-type', 'content-length', 'host', 'connection', 'accept-encoding', 'cf-worker', 'transfer-encoding']).toContain(h);
  });

  it('passes back only the content type of the worker response, uncached, with the region', async () => {
    const e = await start();
    const r = await infer(e);
    expect(r.res.headers.get('content-type')).toBe('application/obscura-sealed-response');
    expect(r.res.headers.get('cache-control')).toBe('no-store');
    expect(r.region).toBe('eu-west');
  });
});

describe('regions', () => {
  it('routes each request to the nearest region by request.cf (colo first, then continent)', async () => {
    const e = await start();
    expect((await infer(e, { cf: FROM_EU })).region).toBe('eu-west');
    expect((await infer(e, { cf: FROM_NA })).region).toBe('us-east');
    expect((await infer(e, { cf: { continent: 'EU', colo: 'IAD' } })).region).toBe('us-east'); // colo listed for us-east
    expect((await infer(e, { cf: { continent: 'SA', colo: 'GRU' } })).region).toBe('us-east'); // NA is nearer to SA than EU
    expect((await infer(e, { cf: { continent: 'AF', colo: 'JNB' } })).region).toBe('eu-west');
  });

  it('fails over to the next region when the nearest answers 5xx, and skips it while unhealthy', async () => {
    eu.mode = 'error';
    const e = await start();
    const first = await infer(e);
    expect(first.status).toBe(200);
    expect(first.region).toBe('us-east');
    expect(eu.inferences()).toHaveLength(1);
    expect(na.inferences()).toHaveLength(1);
    // The same ciphertext went to the second region once.
    expect(na.inferences()[0].body.equals(eu.inferences()[0].body)).toBe(true);
    const second = await infer(e);
    expect(second.region).toBe('us-east');
    expect(eu.inferences()).toHaveLength(1); // not tried again during its cooldown
  });

  it('fails over when the nearest region is down (connection refused)', async () => {
    await eu.stop();
    const e = await start();
    const r = await infer(e);
    expect(r.status).toBe(200);
    expect(r.region).toBe('us-east');
    const health = (await (await e.fetch('/healthz')).json()) as { unhealthy: Record<string, { lastError: string }> };
    expect(health.unhealthy['eu-west'].lastError).toContain('unreachable');
  });

  it('brings a region back after its cooldown through a background /healthz probe', async () => {
    eu.mode = 'error';
    const e = await start({ vars: { REGION_COOLDOWN_MS: '300' } });
    expect((await infer(e)).region).toBe('us-east');
    eu.mode = 'ok';
    await sleep(400);
    const probing = await infer(e); // still served by us-east; eu-west is probed, not used, for this one
    expect(probing.region).toBe('us-east');
    await until(() => eu.requests.some((r) => r.path === '/healthz') || undefined, 'the probe of eu-west');
    await until(async () => ((await infer(e)).region === 'eu-west' ? true : undefined), 'eu-west to be used again');
    expect(eu.inferences().length).toBeGreaterThanOrEqual(2);
  });

  it('answers 503 JSON when every region fails, returning the last 5xx or the connect error', async () => {
    eu.mode = 'error';
    na.mode = 'error';
    const e = await start();
    const r = await infer(e);
    expect(r.status).toBe(502); // the last region's own answer, passed back
    await eu.stop();
    await na.stop();
    const e2 = await start();
    try {
      const down = await infer(e2);
      expect(down.status).toBe(503);
      expect(down.json.error.code).toBe('ERR_UPSTREAM');
    } finally {
      await e.dispose();
      await na.start();
    }
  });

  it('equally near regions take turns; one that fails is skipped and the other takes every request', async () => {
    const central = new FakeWorker('eu-central');
    const west = new FakeWorker('us-west');
    await central.start();
    await west.start();
    try {
      const e = await start({
        vars: {
          WORKERS: JSON.stringify([
            { region: 'eu-west', url: eu.url, continent: 'EU' },
            { region: 'eu-central', url: central.url, continent: 'EU' },
            { region: 'us-east', url: na.url, continent: 'NA' },
            { region: 'us-west', url: west.url, continent: 'NA' },
          ]),
        },
      });
      // Requests from two continents, interleaved: each continent's pair still takes turns.
      const count: Record<string, number> = {};
      for (let i = 0; i < 8; i++) {
        const r = await infer(e, { cf: i % 2 ? FROM_NA : { continent: 'EU', colo: 'CDG' } });
        count[r.region!] = (count[r.region!] ?? 0) + 1;
      }
      expect(count).toEqual({ 'eu-west': 2, 'eu-central': 2, 'us-east': 2, 'us-west': 2 });

      await central.stop();
      const after: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await infer(e, { cf: { continent: 'EU', colo: 'CDG' } });
        expect(r.status).toBe(200);
        after.push(r.region!);
      }
      expect(after).toEqual(['eu-west', 'eu-west', 'eu-west', 'eu-west']); // the nearer one left; NA only as a fallback
      expect(na.inferences().length + west.inferences().length).toBe(4); // the ones from NA
    } finally {
      await central.stop();
      await west.stop();
    }
  });

  it('honours a region model list', async () => {
    const e = await start({
      vars: {
        WORKERS: JSON.stringify([
          { region: 'eu-west', url: eu.url, continent: 'EU', models: ['other-model'] },
          { region: 'us-east', url: na.url, continent: 'NA' },
        ]),
      },
    });
    expect((await infer(e, { body: await sealedRequest('sample-ngram') })).region).toBe('us-east');
    expect((await infer(e, { body: await sealedRequest('other-model') })).region).toBe('eu-west');
  });
});

describe('API keys', () => {
  it('is open (and says so) while no key is configured', async () => {
    const e = await start();
    const r = await infer(e);
    expect(r.status).toBe(200);
    expect(r.res.headers.get('obscura-auth')).toBe('open');
    expect(((await (await e.fetch('/healthz')).json()) as { auth: string }).auth).toBe('open');
  });

  it('requires a valid key once one is configured, and never forwards it', async () => {
    const e = await start();
    const key = 'obk_test-key-0123456789abcdefghijklmnop';
    await e.putApiKey(key);
    expect(((await (await e.fetch('/healthz')).json()) as { auth: string }).auth).toBe('keys');

    const none = await infer(e);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('ERR_UNAUTHORIZED');
    expect(none.res.headers.get('www-authenticate')).toContain('Bearer');
    const wrong = await infer(e, { headers: { authorization: 'Bearer obk_wrong' } });
    expect(wrong.status).toBe(401);
    expect(eu.requests).toHaveLength(0);

    const ok = await infer(e, { headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).toBe(200);
    expect(ok.res.headers.get('obscura-auth')).toBe('key');
    const [got] = eu.inferences();
    expect(got.headers.authorization).toBeUndefined();
    expect(JSON.stringify(got.headers)).not.toContain(key);
    expect(got.body.includes(Buffer.from(key))).toBe(false);

    // The service routes need it too.
    const secret = await e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/obscura-secret+cbor' }, body: new Uint8Array(10) });
    expect(secret.status).toBe(401);
    // The shared bundle stays public (it is the same for everyone).
    expect((await e.fetch('/v1/attestation')).status).not.toBe(401);
  });

  it('fails closed when keys are required and none is configured', async () => {
    const e = await start({ vars: { API_KEYS_REQUIRED: 'true' } });
    const r = await infer(e, { headers: { authorization: 'Bearer anything' } });
    expect(r.status).toBe(401);
    expect(r.json.error.message).toContain('none is configured');
    expect(((await (await e.fetch('/healthz')).json()) as { auth: string }).auth).toBe('closed');
    expect(eu.requests).toHaveLength(0);
  });
});

describe('rate limits', () => {
  it('answers 429 JSON with Retry-After past the per-key limit; other keys are unaffected', async () => {
    const e = await start({ rateLimits: { INFERENCE_RATE_LIMITER: 3 } });
    const a = { authorization: 'Bearer key-a' };
    for (let i = 0; i < 3; i++) expect((await infer(e, { headers: a })).status).toBe(200);
    const limited = await infer(e, { headers: a });
    expect(limited.status).toBe(429);
    expect(limited.json.error.code).toBe('ERR_RATE_LIMITED');
    const retryAfter = Number(limited.res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.json.error.retryAfterSeconds).toBe(retryAfter);
    expect(eu.inferences()).toHaveLength(3);
    expect((await infer(e, { headers: { authorization: 'Bearer key-b' } })).status).toBe(200);
  });

  it('limits the service routes per key as well', async () => {
    const e = await start({ rateLimits: { SERVICE_RATE_LIMITER: 1 }, vars: { AS_URL: na.url } });
    const post = () => e.fetch('/v1/secrets', { method: 'POST', headers: { 'content-type': 'application/obscura-secret+cbor', authorization: 'Bearer k' }, body: new Uint8Array(10) });
    expect((await post()).status).not.toBe(429);
    const limited = await post();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});
