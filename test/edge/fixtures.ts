/**
 * Edge test fixtures: the real edge as `wrangler deploy` builds it, run in workerd by the Miniflare API
 * with the bindings wrangler.toml declares (KV, rate limiters, vars), and, on 127.0.0.1 only, a fake
 * attestation service serving real bundles from the simulated TEE and fake worker regions that record
 * every request they receive.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Miniflare, type RequestInit as MfRequestInit } from 'miniflare';
import { randomBytes } from '../../shared/bytes.ts';
import { encodeAttestedCore, parseAttestedCore } from '../../shared/protocol/attested-core.ts';
import { encodeBundle, parseBundle } from '../../shared/protocol/bundle.ts';
import { generateHpkeKeyPair, type HpkeKeyPair } from '../../shared/protocol/hpke-suites.ts';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { sealRequest } from '../../shared/protocol/sealed-request.ts';
import { BUNDLE_LIFETIME_MS, BundleIssuer } from '../../attestation-service/bundle-issuer.ts';
import { ManifestStore } from '../../attestation-service/manifest-store.ts';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { openSimulatedSnpTee } from '../../worker-os/tee-sim/index.ts';
import { simulatedSnpProvider } from '../../worker-os/tee/simulated-snp.ts';
import type { TeeProvider } from '../../worker-os/tee/provider.ts';

const run = promisify(execFile);

/** Environment for every wrangler run here: nothing leaves this machine (no cf.json, metrics or update check). */
export const WRANGLER_ENV = {
  ...process.env,
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_SEND_METRICS: 'false',
  WRANGLER_HIDE_BANNER: 'true',
  CI: 'true',
};
export const WRANGLER = join(PROJECT_ROOT, 'node_modules', '.bin', 'wrangler');

export async function wrangler(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(WRANGLER, args, { cwd: PROJECT_ROOT, env: WRANGLER_ENV, maxBuffer: 16 * 1024 * 1024 });
}

let built: Promise<string> | undefined;
/** `wrangler deploy --dry-run` of the top-level (local) environment: the deployable bundle. */
export function buildEdge(): Promise<string> {
  built ??= (async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'obscura-edge-build-'));
    await wrangler(['deploy', '--dry-run', '--env=', '--outdir', outdir]);
    return join(outdir, 'index.js');
  })();
  return built;
}

export interface EdgeOptions {
  vars?: Record<string, string>;
  /** Override the limit of a rate limiter binding (its period stays as in wrangler.toml). */
  rateLimits?: Partial<Record<'INFERENCE_RATE_LIMITER' | 'SERVICE_RATE_LIMITER', number>>;
}

export interface RequestOptions extends MfRequestInit {
  cf?: Record<string, unknown>;
}

export interface RunningEdge {
  mf: Miniflare;
  fetch(path: string, init?: RequestOptions): Promise<Response>;
  putApiKey(key: string): Promise<void>;
  dispose(): Promise<void>;
}

export async function startEdge(opts: EdgeOptions = {}): Promise<RunningEdge> {
  const scriptPath = await buildEdge();
  const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(PROJECT_ROOT, 'wrangler.toml'), '');
  const ratelimits = structuredClone(workerOptions.ratelimits ?? {}) as Record<string, { simple: { limit: number; period: number } }>;
  for (const [name, limit] of Object.entries(opts.rateLimits ?? {})) ratelimits[name].simple.limit = limit!;
  const mf = new Miniflare({
    ...(workerOptions as object),
    name: 'obscura-edge',
    modules: true,
    scriptPath,
    modulesRoot: dirname(scriptPath),
    modulesRules: [],
    bindings: { ...(workerOptions.bindings as Record<string, string>), ...opts.vars },
    ratelimits,
    cf: false, // never fetch cf.json; tests pass request.cf themselves
  } as ConstructorParameters<typeof Miniflare>[0]);
  await mf.ready;
  return {
    mf,
    fetch: (path, init) => mf.dispatchFetch(`https://edge.test${path}`, init) as unknown as Promise<Response>,
    async putApiKey(key) {
      const { createHash } = await import('node:crypto');
      const kv = await mf.getKVNamespace('API_KEYS');
      await kv.put(`sha256:${createHash('sha256').update(key).digest('hex')}`, JSON.stringify({ name: 'test' }));
    },
    dispose: () => mf.dispose(),
  };
}

// ---------------------------------------------------------------------------------------------------
// Real bundles from the simulated TEE (the attestation service's own BundleIssuer).

export class Bundles {
  private constructor(
    readonly rootPem: string,
    private readonly tee: TeeProvider,
    private readonly otherTee: TeeProvider,
    private readonly hpke: HpkeKeyPair[],
  ) {}

  static async create(): Promise<Bundles> {
    const dir = mkdtempSync(join(tmpdir(), 'obscura-edge-tee-'));
    const otherDir = mkdtempSync(join(tmpdir(), 'obscura-edge-tee-other-'));
    const measurement = randomBytes(48);
    const tee = await simulatedSnpProvider({ hardwareDir: dir, measurement });
    const otherTee = await simulatedSnpProvider({ hardwareDir: otherDir, measurement });
    const { arkPem } = await openSimulatedSnpTee({ dir });
    return new Bundles(arkPem, tee, otherTee, [await generateHpkeKeyPair()]);
  }

  private issue(issuedAt: number, opts: { nonce?: Uint8Array; otherMachine?: boolean } = {}): Promise<Uint8Array> {
    const issuer = new BundleIssuer({
      tee: opts.otherMachine ? this.otherTee : this.tee,
      manifests: new ManifestStore(() => issuedAt),
      hpke: this.hpke,
      tlsKeySha256: randomBytes(32),
      meshCaSha256: randomBytes(32),
      now: () => issuedAt,
    });
    return issuer.bundle(opts.nonce);
  }

  /** Issued now (or `ageMs` ago), valid for the service's bundle lifetime. */
  fresh(ageMs = 0): Promise<Uint8Array> {
    return this.issue(Date.now() - ageMs);
  }

  /** Valid now, expiring in `ms`. */
  expiringIn(ms: number): Promise<Uint8Array> {
    return this.issue(Date.now() - BUNDLE_LIFETIME_MS + ms);
  }

  /** Validly signed but past its expiry. */
  expired(): Promise<Uint8Array> {
    return this.issue(Date.now() - BUNDLE_LIFETIME_MS - 1_000);
  }

  withNonce(nonce: Uint8Array): Promise<Uint8Array> {
    return this.issue(Date.now(), { nonce });
  }

  /** Signed by a simulated machine whose root the edge does not trust. */
  untrustedRoot(): Promise<Uint8Array> {
    return this.issue(Date.now(), { otherMachine: true });
  }

  /** A real bundle whose core's HPKE key was swapped after it was attested (the evidence no longer binds it). */
  async tampered(): Promise<Uint8Array> {
    const b = parseBundle(await this.fresh());
    const core = parseAttestedCore(b.core);
    core.hpke = core.hpke.map((h) => ({ ...h, publicKey: randomBytes(h.publicKey.length) }));
    return encodeBundle({ ...b, core: encodeAttestedCore(core) });
  }
}

// ---------------------------------------------------------------------------------------------------
// Fake upstreams on 127.0.0.1.

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

abstract class FakeServer {
  readonly requests: Recorded[] = [];
  private server?: Server;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  protected abstract handle(req: Recorded): { status: number; contentType: string; body: Uint8Array | string };

  count(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.path === path).length;
  }

  async start(): Promise<this> {
    if (this.server) return this;
    this.server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const rec: Recorded = { method: req.method ?? '', path: (req.url ?? '').split('?')[0], headers: req.headers, body: Buffer.concat(chunks) };
      this.requests.push(rec);
      const out = this.handle(rec);
      res.writeHead(out.status, { 'content-type': out.contentType });
      res.end(out.body);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Stop listening: connections to the port are refused until start() again (same port). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
}

export class FakeAttestationService extends FakeServer {
  /** What GET /v1/attestation serves. */
  bundle: Uint8Array = new Uint8Array();
  /** What POST /v1/attestation serves; default: nothing set (500). */
  nonceBundle?: (nonce: Uint8Array) => Uint8Array;
  /** POST /v1/secrets answers 403 ERR_VALUE_MISMATCH (as after a manifest update) instead of 201. */
  refuseSecrets = false;

  protected handle(req: Recorded) {
    if (req.method === 'GET' && req.path === '/v1/attestation') return { status: 200, contentType: 'application/obscura-bundle+cbor', body: this.bundle };
    if (req.method === 'POST' && req.path === '/v1/attestation' && this.nonceBundle) {
      return { status: 200, contentType: 'application/obscura-bundle+cbor', body: this.nonceBundle(req.body) };
    }
    if (req.method === 'POST' && req.path === '/v1/secrets') {
      return this.refuseSecrets
        ? { status: 403, contentType: 'application/json', body: '{"error":{"code":"ERR_VALUE_MISMATCH","message":"the secret was sealed against a bundle this service no longer honours"}}' }
        : { status: 201, contentType: 'application/json', body: '{"ok":true}' };
    }
    if (req.method === 'POST' && req.path === '/v1/secrets/allow') return { status: 200, contentType: 'application/json', body: '{"seq":1}' };
    return { status: 500, contentType: 'application/json', body: '{"error":{"code":"ERR_UPSTREAM","message":"not faked"}}' };
  }
}

export class FakeWorker extends FakeServer {
  /** 'ok': 200 sealed answer; 'error': 502 on inference and 503 on /healthz. */
  mode: 'ok' | 'error' = 'ok';

  constructor(readonly region: string) {
    super();
  }

  inferences(): Recorded[] {
    return this.requests.filter((r) => r.path === '/v1/inference');
  }

  protected handle(req: Recorded) {
    if (req.path === '/healthz') return { status: this.mode === 'ok' ? 200 : 503, contentType: 'application/json', body: JSON.stringify({ ok: this.mode === 'ok' }) };
    if (this.mode === 'error') return { status: 502, contentType: 'application/json', body: '{"error":{"code":"ERR_UPSTREAM","message":"AI code failed"}}' };
    return { status: 200, contentType: 'application/obscura-sealed-response', body: `sealed answer from ${this.region}` };
  }
}

/** A well-formed sealed request (under a throwaway secret): what the SDK sends. */
export async function sealedRequest(model = 'sample-ngram'): Promise<Uint8Array> {
  const key = await importInferenceSecret(randomBytes(32));
  const sealed = await sealRequest({
    secretKey: key,
    secretId: randomBytes(16),
    method: 'POST',
    path: '/v1/chat/completions',
    routing: { model, max_tokens: 5 },
    body: new TextEncoder().encode(JSON.stringify({ messages: [{ role: 'user', content: 'hello' }] })),
    now: Date.now(),
  });
  return sealed.bytes;
}

export const SEALED = 'application/obscura-sealed-request+cbor';

/** Headers that identify a client; none may reach a worker or the attestation service. */
export const CLIENT_IDENTIFYING = {
  'cf-connecting-ip': '203.0.113.7',
  'x-forwarded-for': '203.0.113.7, 198.51.100.1',
  'x-real-ip': '203.0.113.7',
  'true-client-ip': '203.0.113.7',
  cookie: 'session=s3cr3t-cookie',
  authorization: 'Bearer client-key-that-must-not-travel',
};

export async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
