/**
 * The browser chat page, served from memory: GET / (the HTML) and GET /page/NAME.HASH.EXT (its
 * script, stylesheet and icon, named by content hash; script and stylesheet pinned by SRI in the
 * HTML). The page verifies the attestation and seals prompts itself (client/web/chat-page.ts); the
 * edge only hands out its files.
 *
 * The page's trust anchors come from the page's own client policy. A production page ships it in its
 * script (OBSCURA_PAGE_POLICY at build time). Only when CLIENT_POLICY is set (the local deployment:
 * `obscura up` sets it) does the edge put that policy into the HTML, and the page says so plainly: a
 * policy served by the edge is only as trustworthy as the edge.
 */
import type { Env } from '../env.ts';
import { PAGE_FILES, PAGE_HTML } from './page-assets.js';

const POLICY_SLOT = '<!--OBSCURA_CLIENT_POLICY-->';

/** Same-origin script, style and fetch only; no inline code, no eval, no framing, no forms elsewhere. */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

/** The policy as an inert JSON data block (never executed); `<`, `>` and `&` escaped so it cannot end the element. */
function policyBlock(env: Env): string {
  const raw = (env.CLIENT_POLICY ?? '').trim();
  if (!raw) return '';
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    console.error(JSON.stringify({ event: 'client-policy-invalid', message: 'CLIENT_POLICY is not JSON; the page is served without it' }));
    return '';
  }
  const json = JSON.stringify(doc).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  return `<script type="application/json" id="obscura-client-policy">${json}</script>`;
}

export function servePage(env: Env): Response {
  return new Response(PAGE_HTML.replace(POLICY_SLOT, policyBlock(env)), {
    headers: { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/** GET /page/:file: the page's script, stylesheet or icon; anything else is not found (undefined). */
export function servePageFile(file: string): Response | undefined {
  const found = PAGE_FILES.find((f) => f.path === `/page/${file}`);
  if (!found) return undefined;
  // Named by content hash: a new build has a new name, so it may be cached for good.
  return new Response(found.body, { headers: { ...SECURITY_HEADERS, 'content-type': found.type, 'cache-control': 'public, max-age=31536000, immutable' } });
}
