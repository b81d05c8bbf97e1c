/**
 * The worker API: list, inspect, start and stop the AI code this worker runs, for the owners of the
 * current manifest only.
 *
 *   GET  /agent/v1/ai-code                 every AI code of this worker, and whether the manifest allows it
 *   GET  /agent/v1/ai-code/{name}          one of them
 *   POST /agent/v1/ai-code/{name}/start    start it: only if the current manifest allows it (name, and
 *                                          the image digest the supervisor checks before starting)
 *   POST /agent/v1/ai-code/{name}/stop     stop it (it stays stopped until started again)
 *
 * Every request is signed by an owner (shared/manifest/owner-request.ts): ECDSA P-256 over the CBOR of
 * {purpose: 'obscura/v1 agent request', method, path, timestamp, nonce, manifestHead}, in the headers
 * x-obscura-owner, -timestamp (ms), -nonce (base64url, 16 to 64 bytes), -manifest-head (hex) and
 * -signature (base64url, P1363). Refused: unsigned, an id that is no owner of the current manifest, a
 * bad signature, a timestamp more than 5 minutes off, a head other than the current one, a nonce seen
 * before (kept as long as its timestamp could pass), and any request body (none is signed).
 * The current manifest comes from the attestation service (its chain links and digest checked).
 * Every request is logged as metadata (route, name, owner, outcome), never with content.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { equalBytes, fromBase64Url, fromHex, randomBytes, toBase64Url, toHex, utf8 } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { manifestDigest, parseChainEntry, verifyChainLinks } from '../shared/manifest/chain.ts';
import { OWNER_REQUEST_MAX_SKEW_MS, signOwnerRequest, verifyOwnerRequest } from '../shared/manifest/owner-request.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { parseManifest } from '../shared/manifest/validate-manifest.ts';
import { fromWireError, toWireError } from '../shared/protocol/wire-error.ts';
import type { AiCodeSupervisor } from './ai-code-supervisor.ts';

export const PURPOSE_AGENT_REQUEST = 'obscura/v1 agent request';
export const AGENT_HEADERS = {
  owner: 'x-obscura-owner',
  timestamp: 'x-obscura-timestamp',
  nonce: 'x-obscura-nonce',
  manifestHead: 'x-obscura-manifest-head',
  signature: 'x-obscura-signature',
} as const;
const MANIFEST_REFRESH_MIN_MS = 5_000;
const MAX_NONCES = 100_000;

export interface CurrentManifest {
  manifest: Manifest;
  head: Uint8Array;
}

export interface ManifestSource {
  /** The current manifest; `refresh` asks the source again (rate-limited) instead of a cached copy. */
  current(opts?: { refresh?: boolean }): Promise<CurrentManifest | undefined>;
}

/** The headers of an owner-signed agent request (the CLI and tests use this). */
export async function signAgentRequest(input: {
  privateKey: CryptoKey;
  ownerId: string;
  method: string;
  path: string;
  manifestHead: Uint8Array;
  timestamp?: number;
  nonce?: Uint8Array;
}): Promise<Record<string, string>> {
  const timestamp = input.timestamp ?? Date.now();
  const nonce = input.nonce ?? randomBytes(16);
  const fields = { method: input.method.toUpperCase(), path: input.path, timestamp, nonce, manifestHead: input.manifestHead };
  const signature = await signOwnerRequest(input.privateKey, PURPOSE_AGENT_REQUEST, fields);
  return {
    [AGENT_HEADERS.owner]: input.ownerId,
    [AGENT_HEADERS.timestamp]: String(timestamp),
    [AGENT_HEADERS.nonce]: toBase64Url(nonce),
    [AGENT_HEADERS.manifestHead]: toHex(input.manifestHead),
    [AGENT_HEADERS.signature]: toBase64Url(signature),
  };
}

/** The attestation service's current manifest (GET /v1/manifest), its chain links and digest checked. */
export class AsManifestSource implements ManifestSource {
  private cached?: CurrentManifest;
  private fetchedAt = 0;
  private inflight?: Promise<CurrentManifest | undefined>;
  private readonly agent: Agent;

  constructor(
    private readonly asUrl: string,
    caPem: string,
  ) {
    this.agent = new Agent({ connect: { ca: caPem } });
  }

  async current(opts: { refresh?: boolean } = {}): Promise<CurrentManifest | undefined> {
    const due = !this.cached || (opts.refresh && Date.now() - this.fetchedAt >= MANIFEST_REFRESH_MIN_MS);
    if (!due) return this.cached;
    this.inflight ??= this.load().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async load(): Promise<CurrentManifest | undefined> {
    this.fetchedAt = Date.now();
    const res = await request(`${this.asUrl}/v1/manifest`, { dispatcher: this.agent });
    const body = (await res.body.json()) as { manifest?: unknown; head?: string; chain?: Record<string, unknown>[] };
    if (res.statusCode !== 200) throw new ObscuraError('ERR_UPSTREAM', `the attestation service answered ${res.statusCode} for the manifest`);
    if (!body.manifest || !Array.isArray(body.chain) || typeof body.head !== 'string') return this.cached;
    const manifest = parseManifest(body.manifest);
    const entries = body.chain.map((e, i) =>
      parseChainEntry({ ...e, prev: fromHex(String(e.prev)), manifestSha256: fromHex(String(e.manifestSha256)), signature: fromBase64Url(String(e.signature)) }, `chain[${i}]`),
    );
    const head = await verifyChainLinks(entries);
    if (!equalBytes(head, fromHex(body.head))) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the manifest chain does not lead to the head the service names');
    if (!equalBytes(await manifestDigest(manifest), entries[entries.length - 1].manifestSha256)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the current manifest is not the one the chain names last');
    }
    this.cached = { manifest, head };
    return this.cached;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Nonces of accepted requests, each kept while its request's timestamp could still pass. */
class NonceBook {
  private readonly seen = new Map<string, number>(); // owner + nonce -> forget after (ms)

  accept(key: string, timestamp: number, now: number): void {
    for (const [k, until] of this.seen) if (until < now) this.seen.delete(k);
    if (this.seen.has(key)) throw new ObscuraError('ERR_REPLAY', 'this signed request was already received: sign a fresh one (new nonce)');
    if (this.seen.size >= MAX_NONCES) throw new ObscuraError('ERR_UPSTREAM', 'too many signed requests in the last minutes; try again later');
    this.seen.set(key, Math.max(timestamp, now) + OWNER_REQUEST_MAX_SKEW_MS);
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const bytes = utf8(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(bytes);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

type Route = { action: 'list' } | { action: 'inspect' | 'start' | 'stop'; name: string };

function parseRoute(method: string, path: string): Route | undefined {
  if (method === 'GET' && path === '/agent/v1/ai-code') return { action: 'list' };
  const m = /^\/agent\/v1\/ai-code\/([a-z0-9][a-z0-9._-]{0,62})(?:\/(start|stop))?$/.exec(path);
  if (!m) return undefined;
  if (!m[2] && method === 'GET') return { action: 'inspect', name: m[1] };
  if (m[2] && method === 'POST') return { action: m[2] as 'start' | 'stop', name: m[1] };
  return undefined;
}

export class AgentApi {
  private readonly nonces = new NonceBook();

  constructor(
    private readonly opts: {
      aiCode: AiCodeSupervisor[];
      manifest: ManifestSource;
      log: (event: Record<string, string | number | boolean>) => void;
      measurementHex?: string;
      now?: () => number;
    },
  ) {}

  /** Whether this API owns the path (everything under /agent/v1/). */
  static owns(path: string): boolean {
    return path.startsWith('/agent/v1/') || path === '/agent/v1';
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const route = parseRoute(method, url);
    let owner: string | undefined;
    const log = (outcome: string) =>
      this.opts.log({
        event: 'agent-request',
        action: route?.action ?? 'none',
        ...(route && 'name' in route ? { name: route.name } : {}),
        ...(owner ? { owner } : {}),
        outcome,
        ms: Math.round(performance.now() - started),
      });
    try {
      const current = await this.authenticate(req, method, url);
      owner = current.owner;
      if (!route) {
        log('ERR_USAGE');
        return send(res, 404, { error: { code: 'ERR_USAGE', message: `no route ${method} ${url.slice(0, 200)}` } });
      }
      const result = await this.act(route, current);
      log('ok');
      send(res, 200, result);
    } catch (e) {
      const code = (e as ObscuraError).code ?? 'error';
      log(code);
      if (e instanceof ObscuraError && e.code === 'ERR_USAGE' && /^no AI code named/.test(e.message)) {
        return send(res, 404, { error: { code: e.code, message: e.message } });
      }
      const { status, body } = toWireError(e);
      send(res, status, body);
    }
  }

  private async authenticate(req: IncomingMessage, method: string, path: string): Promise<CurrentManifest & { owner: string }> {
    const ownerId = header(req, AGENT_HEADERS.owner);
    const ts = header(req, AGENT_HEADERS.timestamp);
    const nonceText = header(req, AGENT_HEADERS.nonce);
    const headText = header(req, AGENT_HEADERS.manifestHead);
    const sigText = header(req, AGENT_HEADERS.signature);
    if (!ownerId || !ts || !nonceText || !headText || !sigText) {
      throw new ObscuraError('ERR_SIGNATURE_INVALID', `the request is not signed by an owner of the manifest (headers ${Object.values(AGENT_HEADERS).join(', ')})`);
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > 0 || req.headers['transfer-encoding']) throw new ObscuraError('ERR_USAGE', 'agent requests carry no body');
    const timestamp = Number(ts);
    if (!Number.isSafeInteger(timestamp)) throw new ObscuraError('ERR_MALFORMED', `${AGENT_HEADERS.timestamp} must be milliseconds since the epoch`);
    let nonce: Uint8Array;
    let manifestHead: Uint8Array;
    let signature: Uint8Array;
    try {
      nonce = fromBase64Url(nonceText);
      manifestHead = fromHex(headText);
      signature = fromBase64Url(sigText);
    } catch {
      throw new ObscuraError('ERR_MALFORMED', 'the signature headers are not valid base64url / hex');
    }
    if (nonce.length < 16 || nonce.length > 64) throw new ObscuraError('ERR_MALFORMED', `${AGENT_HEADERS.nonce} must be 16 to 64 bytes`);
    if (manifestHead.length !== 32) throw new ObscuraError('ERR_MALFORMED', `${AGENT_HEADERS.manifestHead} must be 32 bytes (hex)`);

    let current = await this.opts.manifest.current();
    if (current && !equalBytes(current.head, manifestHead)) current = await this.opts.manifest.current({ refresh: true });
    if (!current) throw new ObscuraError('ERR_NO_WORKER', 'this worker knows no manifest yet, so no owner can be checked');
    const now = (this.opts.now ?? Date.now)();
    const owner = await verifyOwnerRequest({
      manifest: current.manifest,
      head: current.head,
      ownerId,
      purpose: PURPOSE_AGENT_REQUEST,
      fields: { method, path, timestamp, nonce, manifestHead },
      signature,
      now,
    });
    this.nonces.accept(`${owner}\0${toHex(nonce)}`, timestamp, now);
    return { ...current, owner };
  }

  private supervisor(name: string): AiCodeSupervisor {
    const s = this.opts.aiCode.find((a) => a.name === name);
    if (!s) throw new ObscuraError('ERR_USAGE', `no AI code named "${name}" runs on this worker`);
    return s;
  }

  private describe(s: AiCodeSupervisor, current: CurrentManifest): Record<string, unknown> {
    const entry = current.manifest.aiCode.find((a) => a.name === s.name);
    return { ...s.info(), allowed: entry !== undefined, ...(entry ? { allowedImageDigest: entry.imageDigest } : {}) };
  }

  private async act(route: Route, current: CurrentManifest): Promise<unknown> {
    const base = { manifestHead: toHex(current.head), ...(this.opts.measurementHex ? { measurement: this.opts.measurementHex } : {}) };
    if (route.action === 'list') return { ...base, aiCode: this.opts.aiCode.map((s) => this.describe(s, current)) };
    const s = this.supervisor(route.name);
    if (route.action === 'start') {
      const entry = current.manifest.aiCode.find((a) => a.name === route.name);
      if (!entry) throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `the current manifest does not allow the AI code "${route.name}"`);
      await s.start(entry); // refuses an image whose digest is not entry.imageDigest
    } else if (route.action === 'stop') {
      await s.stop();
    }
    return { ...base, aiCode: this.describe(s, current) };
  }
}

/** Send one owner-signed request to a worker's API (the CLI's `obscura worker ... --worker URL`). */
export async function callAgent(input: {
  workerUrl: string;
  caPem?: string;
  privateKey: CryptoKey;
  ownerId: string;
  manifestHead: Uint8Array;
  method: 'GET' | 'POST';
  path: string;
}): Promise<Record<string, unknown>> {
  const headers = await signAgentRequest(input);
  const agent = new Agent({ connect: input.caPem ? { ca: input.caPem } : {} });
  try {
    const res = await request(`${input.workerUrl.replace(/\/$/, '')}${input.path}`, { method: input.method, headers, dispatcher: agent });
    const body = (await res.body.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (res.statusCode !== 200) throw fromWireError(res.statusCode, body);
    return body ?? {};
  } finally {
    await agent.close();
  }
}
