/**
 * How the SDK reads a fetch call: a URL string or URL with a string or byte body is read as it is (no
 * `Request` built), anything else through `new Request()`; either way the worker gets the same sealed
 * request (method, API path, routing fields, body), the caller's authorization header goes along, and
 * aborting the caller's signal aborts the call in flight.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromUtf8 } from '../../shared/bytes.ts';
import { openRequest, parseSealedRequest } from '../../shared/protocol/sealed-request.ts';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { deriveSecretAllowanceKey } from '../../shared/protocol/secret-allowance.ts';
import { createObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';

interface Sent {
  url: string;
  headers: Headers;
  envelope: Uint8Array;
  signal?: AbortSignal;
}

async function sdkWithCapture(answer: (sent: Sent) => Promise<Response>) {
  const key = await importInferenceSecret(new Uint8Array(randomBytes(32)));
  const sent: Sent[] = [];
  const policy = parseClientPolicy({
    version: 1,
    service: { platform: 'sev-snp', trustedRoots: ['-----BEGIN CERTIFICATE-----\nnot used here\n-----END CERTIFICATE-----'], measurements: ['00'.repeat(48)] },
  });
  const f = createObscuraFetch({
    endpoint: 'https://edge.example',
    policy,
    fetch: (async (url: string, init: RequestInit) => {
      const s = { url, headers: new Headers(init.headers), envelope: new Uint8Array(init.body as ArrayBuffer), signal: init.signal ?? undefined };
      sent.push(s);
      return answer(s);
    }) as typeof fetch,
  });
  const sid = new Uint8Array(randomBytes(16));
  f.session.secret = async () => ({ sid, key, expiresAt: Date.now() + 3_600_000, sealedUnder: new Uint8Array(32), allowanceKey: await deriveSecretAllowanceKey(key) });
  const opened = async (i: number) => {
    const o = await openRequest(parseSealedRequest(sent[i].envelope), key);
    return { method: o.header.method, path: o.header.path, routing: o.header.routing, body: fromUtf8(o.body), authorization: sent[i].headers.get('authorization') };
  };
  return { f, sent, opened };
}

const refused = async () => Response.json({ error: { code: 'ERR_RATE_LIMITED', message: 'slow down' } }, { status: 429 });

describe('the SDK reads every form of a fetch call alike', () => {
  it('string, URL and Request inputs; string, byte and stream bodies: the same sealed request', async () => {
    const { f, sent, opened } = await sdkWithCapture(refused);
    const json = JSON.stringify({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'héllo' }] });
    const headers = { 'content-type': 'application/json', authorization: 'Bearer k-1' };
    const url = 'https://api.example/prefix/v1/chat/completions';
    const calls: [RequestInfo | URL, RequestInit | undefined][] = [
      [url, { method: 'post', headers, body: json }],
      [new URL(url), { method: 'POST', headers: new Headers(headers), body: new TextEncoder().encode(json) }],
      [new Request(url, { method: 'POST', headers, body: json }), undefined],
      [url, { method: 'POST', headers: Object.entries(headers), body: new Blob([json]) }],
    ];
    for (const [input, init] of calls) {
      const res = await f(input, init);
      expect(res.status).toBe(429);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_RATE_LIMITED');
    }
    expect(sent).toHaveLength(calls.length);
    const first = await opened(0);
    expect(first).toEqual({ method: 'POST', path: '/v1/chat/completions', routing: { model: 'm', max_tokens: 5 }, body: JSON.stringify({ messages: [{ role: 'user', content: 'héllo' }] }), authorization: 'Bearer k-1' });
    for (let i = 1; i < calls.length; i++) expect(await opened(i)).toEqual(first);
    for (const s of sent) expect(s.url).toBe('https://edge.example/v1/inference');
  });

  it('a GET without a body, and a body that is not a JSON object refused before anything is sent', async () => {
    const { f, sent, opened } = await sdkWithCapture(refused);
    await f('https://api.example/v1/models');
    expect(await opened(0)).toEqual({ method: 'GET', path: '/v1/models', routing: {}, body: '', authorization: null });
    await expect(f('https://api.example/v1/chat/completions', { method: 'POST', body: '[1,2]' })).rejects.toMatchObject({ code: 'ERR_MALFORMED' });
    await expect(f('https://api.example/v1/chat/completions', { method: 'POST', body: '{"model":' })).rejects.toMatchObject({ code: 'ERR_MALFORMED' });
    expect(sent).toHaveLength(1);
  });

  it('aborting the caller\'s signal aborts the call in flight, whichever way it was read', async () => {
    const { f, sent } = await sdkWithCapture(
      (s) =>
        new Promise<Response>((_, reject) => {
          // As fetch does: an aborted signal rejects at once, a later abort when it comes.
          if (s.signal?.aborted) reject(s.signal.reason);
          s.signal?.addEventListener('abort', () => reject(s.signal?.reason), { once: true });
        }),
    );
    const json = JSON.stringify({ model: 'm', messages: [] });
    for (const make of [
      (signal: AbortSignal) => f('https://api.example/v1/chat/completions', { method: 'POST', body: json, signal }),
      (signal: AbortSignal) => f(new Request('https://api.example/v1/chat/completions', { method: 'POST', body: json, signal })),
    ]) {
      const ac = new AbortController();
      const call = make(ac.signal);
      await new Promise((r) => setTimeout(r, 20));
      expect(sent.at(-1)?.signal?.aborted).toBe(false);
      ac.abort(new Error('the caller gave up'));
      await expect(call).rejects.toThrow();
      expect(sent.at(-1)?.signal?.aborted).toBe(true);
    }
    // Already aborted: nothing waits.
    const ac = new AbortController();
    ac.abort();
    await expect(f('https://api.example/v1/chat/completions', { method: 'POST', body: json, signal: ac.signal })).rejects.toThrow();
    expect(sent.at(-1)?.signal?.aborted).toBe(true);
  }, 10_000);
});
