/**
 * The chat page in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
 * against a system started as `npm start` starts it: the page verifies the attestation itself and
 * shows what it verified, a prompt typed into it is sealed in the page and the streamed answer is
 * shown, and no request the page makes carries the prompt in plaintext.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Request } from 'playwright-core';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../shared/bytes.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { ObscuraSession } from '../../client/sdk/session.ts';
import { startSystem, type RunningSystem } from '../e2e/harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = '/tmp/obscura-page.png';
const CANARY = `canary-${randomBytes(12).toString('hex')}`;

interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer | null;
}

let system: RunningSystem;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const requests: Recorded[] = [];
const problems: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)`);
  system = await startSystem();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  // The local deployment's edge has a certificate from the local CA, which this browser does not know.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('request', (r: Request) => requests.push({ method: r.method(), url: r.url(), headers: r.headers(), body: r.postDataBuffer() }));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
});

afterAll(async () => {
  await browser?.close();
  if (system) expect(await system.stop('SIGINT')).toBe(0);
});

const text = (id: string) => page.locator(`#${id}`).innerText();

/** What the SDK, run in Node against the same edge with the same policy, verifies. */
async function nodeView(policy: unknown): Promise<{ manifestDigest: string; head: string; entries: number }> {
  const agent = new Agent({ connect: { ca: system.caPem } });
  try {
    const session = new ObscuraSession({
      endpoint: system.edgeUrl,
      policy: parseClientPolicy(policy),
      fetch: ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch,
    });
    const v = await session.verified();
    return { manifestDigest: toHex(v.bundle.chain[v.bundle.chain.length - 1].manifestSha256), head: toHex(v.manifestHead), entries: v.bundle.chain.length };
  } finally {
    await agent.close();
  }
}

describe('the chat page served by the edge at /', () => {
  it('is served with a strict Content-Security-Policy and verifies the attestation in the page', async () => {
    const res = await page.goto(`${system.edgeUrl}/`);
    expect(res?.status()).toBe(200);
    const csp = (await res!.allHeaders())['content-security-policy'];
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');

    await page.waitForSelector('body[data-attestation="verified"]', { timeout: 60_000 });
    const policy = JSON.parse(readFileSync(join(system.stateDir, 'client-policy.json'), 'utf8')) as { service: { measurements: string[]; trustedRoots: string[] } };

    expect(await text('f-status')).toMatch(/Verified in this browser/);
    expect(await text('f-platform')).toMatch(/AMD SEV-SNP/);
    expect(await text('f-platform')).toMatch(/debug off/);
    // The service's launch measurement, as the page shows it (groups of 8 hex digits), is the policy's.
    expect((await text('f-measurement')).replace(/\s+/g, '').startsWith(policy.service.measurements[0])).toBe(true);
    // The vendor root's fingerprint, as `openssl x509 -fingerprint -sha256` shows it.
    expect((await text('f-root')).replace(/\s+/g, '')).toContain(new X509Certificate(policy.service.trustedRoots[0]).fingerprint256);
    // The manifest digest and the history's head are the ones the SDK in Node sees for this endpoint.
    const node = await nodeView(policy);
    expect((await text('f-manifest')).replace(/\s+/g, '')).toContain(`sha256:${node.manifestDigest}`);
    expect(await text('f-history')).toMatch(new RegExp(`^${node.entries} entr(y|ies)\\s+head `));
    expect((await text('f-history')).replace(/\s+/g, '')).toContain(`head${node.head}`);
    expect(await text('f-history')).toMatch(/first visit/);
    expect(await text('f-age')).toMatch(/^\d+ s/);
    expect(await text('f-hpke')).toMatch(/X-Wing/);
    // The page says where its trust anchors came from, and what a production page does instead.
    expect(await text('policy-note')).toMatch(/CLIENT_POLICY/);
    expect(await text('policy-note')).toMatch(/production page ships its policy with the page's code/);
  });

  it('seals a typed prompt in the page and streams the answer', async () => {
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    expect(await page.locator('#model').inputValue()).toBe('sample-ngram');
    await page.fill('#prompt', `Tell me about the white rabbit and the sea ${CANARY}`);
    await page.click('#send');
    const answer = page.locator('.msg.assistant').last();
    await page.waitForSelector('.msg.assistant[data-done]', { timeout: 60_000 });
    expect(await answer.getAttribute('data-done')).toBe('true');
    const said = await answer.locator('.text').innerText();
    expect(said.split(/\s+/).length).toBeGreaterThan(5);
    expect(said).not.toContain(CANARY);
    expect(await answer.locator('.meta').innerText()).toMatch(/opened in this page · \d+ tokens/);
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  });

  it('no request the page made carries the prompt in plaintext; prompts went out sealed', () => {
    expect(requests.length).toBeGreaterThan(4);
    for (const r of requests) {
      const all = Buffer.concat([Buffer.from(`${r.method} ${r.url}\n${JSON.stringify(r.headers)}\n`), r.body ?? Buffer.alloc(0)]);
      expect(all.includes(Buffer.from(CANARY)), `${r.method} ${r.url} carries the canary`).toBe(false);
    }
    const origin = new URL(system.edgeUrl).origin;
    // Only the edge's own origin was contacted, and never an OpenAI path in plaintext.
    expect(requests.every((r) => new URL(r.url).origin === origin)).toBe(true);
    expect(requests.some((r) => r.url.includes('/v1/chat/completions'))).toBe(false);
    const sealed = requests.filter((r) => r.url.endsWith('/v1/inference'));
    expect(sealed.length).toBeGreaterThanOrEqual(2); // the model list and the chat
    for (const r of sealed) expect(r.headers['content-type']).toBe('application/obscura-sealed-request+cbor');
    expect(requests.some((r) => r.url.endsWith('/v1/secrets') && r.headers['content-type'] === 'application/obscura-secret+cbor')).toBe(true);
  });

  it('keeps the manifest log in IndexedDB: after a reload the page checks against what it saw', async () => {
    await page.reload();
    await page.waitForSelector('body[data-attestation="verified"]', { timeout: 60_000 });
    expect(await text('f-history')).toMatch(/the same head this browser saw before|extends what this browser saw before/);
  });

  it('refuses a service whose history does not extend what this browser recorded; the person may reset it', async () => {
    // Make the recorded history a different one, as if the service had shown a fork.
    await page.evaluate(
      (origin) =>
        new Promise<void>((resolve, reject) => {
          const open = indexedDB.open('obscura-client', 1);
          open.onsuccess = () => {
            const tx = open.result.transaction('manifest-log', 'readwrite');
            tx.objectStore('manifest-log').put({ seq: 0, head: 'ab'.repeat(32) }, origin);
            tx.oncomplete = () => resolve();
            tx.onerror = () => reject(tx.error);
          };
          open.onerror = () => reject(open.error);
        }),
      new URL(system.edgeUrl).origin,
    );
    await page.reload();
    await page.waitForSelector('body[data-attestation="failed"]', { timeout: 60_000 });
    expect(await text('f-status')).toMatch(/does not extend the one this client trusted before/);
    expect(await page.locator('#send').isDisabled()).toBe(true);
    await page.click('#f-status button.reset');
    await page.waitForSelector('body[data-attestation="verified"]', { timeout: 60_000 });
    expect(await text('f-history')).toMatch(/first visit/);
  });

  it('ran without a console error or a Content-Security-Policy violation', () => {
    expect(problems).toEqual([]);
  });
});
