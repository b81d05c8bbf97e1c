/**
 * The chat page as the built edge serves it (workerd via Miniflare): the HTML at / with a strict
 * Content-Security-Policy, its script and stylesheet from memory under content-hash names that match
 * the HTML's SRI hashes, and the client policy put into the page only when CLIENT_POLICY is set, as an
 * inert, escaped JSON block.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startEdge, type RunningEdge } from './fixtures.ts';

let edge: RunningEdge | undefined;

afterEach(async () => {
  await edge?.dispose();
  edge = undefined;
});

async function page(vars: Record<string, string> = {}) {
  edge = await startEdge({ vars });
  const res = await edge.fetch('/');
  return { res, html: await res.text() };
}

describe('GET /', () => {
  it('serves the page with a strict CSP, and its script and stylesheet as the HTML pins them (SRI)', async () => {
    const { res, html } = await page();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"]) expect(csp).toContain(d);
    expect(csp).not.toMatch(/unsafe|\*|data:/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    // No inline script or style: only external files and (at most) an inert JSON data block.
    expect(html).not.toMatch(/<script(?![^>]*\b(src=|type="application\/json"))/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);

    for (const [tag, attr, type] of [['script', 'src', 'text/javascript'], ['link rel="stylesheet"', 'href', 'text/css']] as const) {
      const m = new RegExp(`<${tag}[^>]*\\b${attr}="(/page/[^"]+)" integrity="(sha384-[^"]+)"`).exec(html);
      expect(m, tag).not.toBeNull();
      const file = await edge!.fetch(m![1]);
      expect(file.status).toBe(200);
      expect(file.headers.get('content-type')).toContain(type);
      expect(file.headers.get('content-security-policy')).toBe(csp);
      const body = Buffer.from(await file.arrayBuffer());
      expect(`sha384-${createHash('sha384').update(body).digest('base64')}`).toBe(m![2]);
    }
    expect((await edge!.fetch('/page/chat.000000000000.js')).status).toBe(400); // not found
  });

  it('has no client policy unless CLIENT_POLICY is set (production: the page ships its own)', async () => {
    const { html } = await page({ CLIENT_POLICY: '' });
    expect(html).not.toContain('obscura-client-policy');
  });

  it('puts CLIENT_POLICY into the page as an inert JSON block that markup in it cannot end', async () => {
    const policy = { version: 1, service: { platform: 'sev-snp', trustedRoots: ['-----BEGIN CERTIFICATE-----\n</script><script>alert(1)</script>\n-----END CERTIFICATE-----'], measurements: ['00'.repeat(48)] } };
    const { html } = await page({ CLIENT_POLICY: JSON.stringify(policy) });
    const m = /<script type="application\/json" id="obscura-client-policy">([^<]*)<\/script>/.exec(html);
    expect(m).not.toBeNull();
    expect(JSON.parse(m![1])).toEqual(policy);
    expect(html).not.toContain('<script>alert(1)');
  });
});
