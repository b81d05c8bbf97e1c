/**
 * The browser chat page (the edge serves it at `/`; client/web/build.mjs bundles this file for it).
 *
 * Everything that matters happens here, in the page: the attestation bundle is verified with the SDK
 * (WebCrypto only) against THIS PAGE'S client policy, never against anything the bundle says; what was
 * verified is shown so a person can compare it with `obscura verify`; each prompt is sealed here with
 * `createObscuraFetch` and the streamed answer is opened event by event. The inference secret is a
 * non-extractable CryptoKey, the manifest log lives in IndexedDB, and the conversation is kept in
 * memory only.
 *
 * Where the policy comes from: a production page ships it with its code (OBSCURA_PAGE_POLICY at build
 * time, baked into this script). The local deployment's edge may instead put the local client policy
 * into the HTML, only when it is configured to (CLIENT_POLICY, set by `obscura up`); the page says so.
 */
import './no-eval.ts'; // first: before any zod schema is built
import { toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { chooseHpkeSuite } from '../../shared/protocol/hpke-suites.ts';
import type { VerifiedBundle } from '../../shared/protocol/verify-bundle.ts';
import { IndexedDbManifestLogStore } from '../sdk/indexeddb-manifest-log.ts';
import type { SeenManifestHead } from '../sdk/manifest-log.ts';
import { createObscuraFetch, type ObscuraFetch } from '../sdk/obscura-fetch.ts';
import { parseClientPolicy, type ClientPolicy } from '../sdk/policy.ts';
import { sseData } from '../sdk/sse.ts';

/** The policy shipped with this script (build.mjs, from OBSCURA_PAGE_POLICY), or null. */
declare const __OBSCURA_SHIPPED_POLICY__: unknown;

const MAX_TOKENS = 160;

type PolicySource = 'shipped' | 'served';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Set a fact: its main line(s) and, optionally, a smaller explanatory line under them. */
function fact(id: string, main: string | string[], detail?: string, cls?: 'ok' | 'bad'): void {
  const dd = $(id);
  dd.replaceChildren(...(Array.isArray(main) ? main.map((line) => el('span', 'line', line)) : [document.createTextNode(main)]));
  if (detail) dd.append(el('span', 'small', detail));
  dd.classList.toggle('ok', cls === 'ok');
  dd.classList.toggle('bad', cls === 'bad');
}

function describeError(e: unknown): string {
  if (e instanceof ObscuraError) return `${e.message} (${e.code})`;
  const cause = (e as { cause?: unknown })?.cause;
  if (cause instanceof ObscuraError) return `${cause.message} (${cause.code})`;
  return e instanceof Error ? e.message : String(e);
}

/** As `openssl x509 -noout -fingerprint -sha256` shows it, in two lines of 16 bytes. */
function colonHex(hex: string): string[] {
  const pairs = hex.toUpperCase().match(/../g) ?? [hex];
  return [pairs.slice(0, 16).join(':') + (pairs.length > 16 ? ':' : ''), pairs.slice(16).join(':')].filter(Boolean);
}

/** Hex in groups of 8, so two copies can be compared by eye. */
function grouped(hex: string): string {
  return hex.match(/.{1,8}/g)?.join(' ') ?? hex;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 90) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

const clock = (t: number) => new Date(t).toLocaleTimeString([], { hour12: false });

function loadPolicy(): { policy: ClientPolicy; source: PolicySource } | undefined {
  const shipped = typeof __OBSCURA_SHIPPED_POLICY__ === 'undefined' ? null : __OBSCURA_SHIPPED_POLICY__;
  if (shipped !== null) return { policy: parseClientPolicy(shipped), source: 'shipped' };
  const served = document.getElementById('obscura-client-policy')?.textContent;
  if (!served) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(served);
  } catch {
    throw new ObscuraError('ERR_MALFORMED', 'the client policy in this page is not JSON');
  }
  return { policy: parseClientPolicy(doc), source: 'served' };
}

function showPolicyNote(source: PolicySource | undefined): void {
  const note = $('policy-note');
  if (source === 'shipped') {
    note.className = 'note shipped';
    note.textContent =
      "Trust anchors (the vendor root and the service's allowed measurements) come from the client policy shipped with this page's code, never from the attestation bundle.";
  } else if (source === 'served') {
    note.className = 'note';
    note.textContent =
      "Local deployment: this page's client policy (the vendor root and the service's allowed measurements) was put into the page by this edge, because `obscura up` configured it to (CLIENT_POLICY). " +
      'That is only as trustworthy as the edge that served it. A production page ships its policy with the page\'s code (built in, from a source you trust), never from the server it checks.';
  } else {
    note.className = 'note';
    note.textContent =
      "This page has no client policy (none was shipped with its code, and this edge serves none), so it cannot verify the service and will not send anything.";
  }
}

function setBadge(state: 'ok' | 'bad' | 'pending', text: string): void {
  const b = $('badge');
  b.className = `badge ${state}`;
  b.textContent = text;
  document.body.dataset.attestation = state === 'ok' ? 'verified' : state === 'bad' ? 'failed' : 'pending';
}

const HPKE_LABELS: Record<string, string> = {
  'X-Wing(ML-KEM-768,X25519)/HKDF-SHA256/AES-256-GCM': 'X-Wing (ML-KEM-768 + X25519, post-quantum hybrid), HKDF-SHA256, AES-256-GCM',
  'DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM': 'DHKEM X25519, HKDF-SHA256, AES-256-GCM',
};

let shown: VerifiedBundle | undefined;

async function showVerified(v: VerifiedBundle, policy: ClientPolicy, seenBefore: SeenManifestHead | undefined, verifiedAt: number): Promise<void> {
  shown = v;
  const f = v.facts;
  const measurement = toHex(f.measurement);
  fact('f-status', `✓ Verified in this browser at ${clock(verifiedAt)}`, 'The evidence chains to your vendor root, shows an allowed measurement, and binds this bundle (report_data = SHA-512 of the attested core).', 'ok');
  fact(
    'f-platform',
    `${f.platform === 'sev-snp' ? 'AMD SEV-SNP' : f.platform} · report v${f.version} · debug ${f.debug ? 'ON' : 'off'}`,
    f.reportedTcb ? `reported TCB: bootloader ${f.reportedTcb.bootloader}, TEE ${f.reportedTcb.tee}, SNP ${f.reportedTcb.snp}, microcode ${f.reportedTcb.microcode}` : undefined,
  );
  fact('f-measurement', grouped(measurement), `allowed by your policy (${policy.service.measurements.length} allowed)`);
  fact('f-root', colonHex(f.root.fingerprintSha256), f.root.subject);
  const chain = v.bundle.chain;
  const last = chain[chain.length - 1];
  if (last) fact('f-manifest', `sha256: ${grouped(toHex(last.manifestSha256))}`, v.manifest ? `models: ${v.manifest.models.map((m) => m.name).join(', ') || '–'} · AI code: ${v.manifest.aiCode.map((a) => a.name).join(', ')}` : undefined);
  else fact('f-manifest', 'no manifest yet', 'the service admits no worker until an owner sets one', 'bad');
  const head = toHex(v.manifestHead);
  const continuity = !seenBefore
    ? `first visit: this browser recorded entry ${chain.length - 1} in IndexedDB, and will refuse a history that does not extend it`
    : seenBefore.seq === chain.length - 1 && seenBefore.head === head
      ? 'the same head this browser saw before'
      : `extends what this browser saw before (entry ${seenBefore.seq})`;
  fact('f-history', [`${chain.length} ${chain.length === 1 ? 'entry' : 'entries'}`, `head ${grouped(head)}`], continuity);
  const suite = chooseHpkeSuite(v.core.hpke.map((h) => h.suite));
  fact('f-hpke', HPKE_LABELS[suite] ?? suite, 'the inference secret is sealed to the key this evidence attests; it stays a non-extractable key in this page');
  showAge(policy);
}

function showAge(policy: ClientPolicy): void {
  if (!shown) return;
  const now = Date.now();
  const core = shown.core;
  fact(
    'f-age',
    duration(now - core.issuedAt),
    `issued ${clock(core.issuedAt)} · expires ${clock(core.expiresAt)} · your policy accepts up to ${duration(policy.maxBundleAgeMs)}`,
  );
}

function addMessage(role: 'user' | 'assistant' | 'error', text: string): { li: HTMLLIElement; text: HTMLSpanElement; meta: HTMLSpanElement } {
  const li = el('li', `msg ${role}`);
  const t = el('span', 'text', text);
  const meta = el('span', 'meta');
  li.append(t, meta);
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return { li, text: t, meta };
}

async function errorOf(res: Response): Promise<string> {
  const body = (await res.json().catch(() => undefined)) as { error?: { message?: string; code?: string } } | undefined;
  return body?.error ? `${body.error.message ?? 'error'} (${body.error.code ?? res.status})` : `HTTP ${res.status}`;
}

async function listModels(obscuraFetch: ObscuraFetch, origin: string): Promise<string[]> {
  const res = await obscuraFetch(`${origin}/v1/models`);
  if (!res.ok) throw new Error(`listing models: ${await errorOf(res)}`);
  const body = (await res.json()) as { data?: { id: string }[] };
  return (body.data ?? []).map((m) => m.id);
}

/** After a manifest fork: let the person forget the recorded history, if they expected a reset. */
function offerReset(log: IndexedDbManifestLogStore): void {
  const button = el('button', 'reset', 'Forget the recorded history and verify again');
  button.type = 'button';
  button.addEventListener('click', () => {
    void log.clear().then(() => location.reload());
  });
  const p = el('p', 'small', 'Only if you expected this service to be reset (a new local deployment, say): otherwise it showed this browser a different history than before.');
  $('f-status').append(p, button);
}

async function main(): Promise<void> {
  const origin = location.origin;
  $('endpoint-hint').textContent = origin;
  setBadge('pending', 'verifying…');
  let loaded: ReturnType<typeof loadPolicy>;
  try {
    loaded = loadPolicy();
  } catch (e) {
    showPolicyNote(undefined);
    fact('f-status', '✗ Not verified', describeError(e), 'bad');
    setBadge('bad', 'not verified');
    return;
  }
  showPolicyNote(loaded?.source);
  if (!loaded) {
    fact('f-status', '✗ Not verified', 'no client policy', 'bad');
    setBadge('bad', 'no policy');
    return;
  }
  const { policy } = loaded;
  const log = new IndexedDbManifestLogStore(origin);
  const warnings: string[] = [];
  const obscuraFetch = createObscuraFetch({ endpoint: origin, policy, manifestLog: log, onWarning: (m) => warnings.push(m) });

  let seenBefore: SeenManifestHead | undefined;
  try {
    seenBefore = await log.load();
    const verified = await obscuraFetch.session.verified();
    await showVerified(verified, policy, seenBefore, Date.now());
    setBadge('ok', '✓ attested');
  } catch (e) {
    fact('f-status', '✗ Not verified: nothing will be sent', describeError(e), 'bad');
    setBadge('bad', 'NOT verified');
    if (e instanceof ObscuraError && e.code === 'ERR_VALUE_MISMATCH' && /does not extend/.test(e.message)) offerReset(log);
    return;
  }
  setInterval(() => showAge(policy), 1000);

  const modelSelect = $<HTMLSelectElement>('model');
  const prompt = $<HTMLTextAreaElement>('prompt');
  const send = $<HTMLButtonElement>('send');
  try {
    const models = await listModels(obscuraFetch, origin);
    for (const id of models) modelSelect.append(new Option(id, id));
  } catch (e) {
    addMessage('error', describeError(e));
  }
  if (modelSelect.options.length === 0) return;
  modelSelect.disabled = prompt.disabled = send.disabled = false;
  prompt.focus();
  document.body.dataset.ready = 'true';

  const history: { role: 'user' | 'assistant'; content: string }[] = [];
  let busy = false;

  const submit = async () => {
    const text = prompt.value.trim();
    if (!text || busy) return;
    busy = true;
    send.disabled = true;
    prompt.value = '';
    history.push({ role: 'user', content: text });
    const mine = addMessage('user', text);
    mine.meta.textContent = 'sealed in this page';
    const answer = addMessage('assistant', '');
    answer.li.classList.add('streaming');
    const started = performance.now();
    let content = '';
    let usage: { completion_tokens?: number } | undefined;
    try {
      const res = await obscuraFetch(`${origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: modelSelect.value, messages: history, max_tokens: MAX_TOKENS, stream: true, stream_options: { include_usage: true } }),
      });
      if (!res.ok || !res.body) throw new Error(await errorOf(res));
      for await (const data of sseData(res.body)) {
        if (data === '[DONE]') continue; // read on to the sealed stream's authenticated end
        const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; usage?: { completion_tokens?: number }; error?: { message?: string } };
        if (chunk.error) throw new Error(chunk.error.message ?? 'the answer failed');
        const delta = chunk.choices?.[0]?.delta?.content ?? '';
        if (delta) {
          content += delta;
          answer.text.textContent = content;
          answer.li.scrollIntoView({ block: 'end' });
        }
        if (chunk.usage) usage = chunk.usage;
      }
      history.push({ role: 'assistant', content });
      answer.meta.textContent = `opened in this page · ${usage?.completion_tokens ?? '?'} tokens · ${((performance.now() - started) / 1000).toFixed(1)} s`;
      answer.li.dataset.done = 'true';
      // The session may have re-verified (a refreshed or nonce'd bundle): show what is in use now.
      const now = await obscuraFetch.session.verified();
      if (now !== shown) await showVerified(now, policy, seenBefore, Date.now());
    } catch (e) {
      history.pop();
      answer.li.classList.add('error');
      answer.meta.textContent = `failed: ${describeError(e)}`;
      answer.li.dataset.done = 'error';
    } finally {
      answer.li.classList.remove('streaming');
      for (const w of warnings.splice(0)) addMessage('error', `warning: ${w}`);
      busy = false;
      send.disabled = false;
      prompt.focus();
    }
  };

  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void submit();
  });
  prompt.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      void submit();
    }
  });
}

void main();
