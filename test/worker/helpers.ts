/**
 * Helpers for the worker tests: the sample AI code under the real gVisor sandbox (through the real
 * supervisor), the encryption proxy in this process on a unix socket, and a sealing client that
 * speaks the sealed protocol as the SDK does (same routing split), with access to the raw bytes.
 */
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { splitRequestRouting } from '../../client/sdk/obscura-fetch.ts';
import { utf8 } from '../../shared/bytes.ts';
import type { AiCodeEntry } from '../../shared/manifest/schema.ts';
import { SEALED_REQUEST_CONTENT_TYPE } from '../../shared/protocol/constants.ts';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { sealRequest, type SealedRequestHeader } from '../../shared/protocol/sealed-request.ts';
import { ResponseOpener, type ResponseEvent } from '../../shared/protocol/sealed-response.ts';
import { AiCodeSupervisor } from '../../backend/ai-code-supervisor.ts';
import { EncryptionProxy } from '../../backend/encryption-proxy.ts';
import { ReplayGuard } from '../../backend/replay-guard.ts';
import { directoryDigest, PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { DEFAULT_SANDBOX_SETTINGS } from '../../worker-os/sandbox/defaults.ts';
import { findRunsc } from '../../worker-os/sandbox/runsc.ts';

export const SAMPLE_DIR = join(PROJECT_ROOT, 'worker-os', 'ai-code', 'sample-ngram');
export const SAMPLE = 'sample-ngram';

export function runsc(): string {
  const r = findRunsc();
  if (!r) throw new Error('runsc is not installed (npm test runs `obscura ensure-runtime` first)');
  return r;
}

/** The sample model's weights (JSON), built from its corpus. */
export function sampleWeights(): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'obscura-weights-'));
  try {
    execFileSync(process.execPath, [join(SAMPLE_DIR, 'build-model.mjs'), join(dir, 'model.json')]);
    return new Uint8Array(readFileSync(join(dir, 'model.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function sampleEntry(imageDigest = directoryDigest(SAMPLE_DIR), name = SAMPLE): AiCodeEntry {
  return { name, imageDigest, command: ['/usr/bin/node', '/app/server.mjs'], sandbox: { ...DEFAULT_SANDBOX_SETTINGS } };
}

export interface LogSink {
  events: Record<string, unknown>[];
  log: (e: Record<string, unknown>) => void;
}

export function logSink(): LogSink {
  const events: Record<string, unknown>[] = [];
  return { events, log: (e) => events.push(e) };
}

let sandboxes = 0;

export function sampleSupervisor(input: {
  stateDir: string;
  log: (e: Record<string, unknown>) => void;
  weights: Uint8Array;
  entry?: AiCodeEntry;
  appDir?: string;
  ociLayout?: string;
  tokensPerSecond?: number;
}): AiCodeSupervisor {
  return new AiCodeSupervisor(
    {
      entry: input.entry ?? sampleEntry(),
      ...(input.ociLayout ? { ociLayout: input.ociLayout } : { appDir: input.appDir ?? SAMPLE_DIR }),
      weights: async () => input.weights,
      env: { OBSCURA_MODEL_NAME: SAMPLE, OBSCURA_TOKENS_PER_SECOND: String(input.tokensPerSecond ?? 0) },
      // runsc names cgroups and its control socket after the id, host-wide: unique per test sandbox.
      sandboxId: `aicode-test-${process.pid}-${++sandboxes}`,
    },
    { runsc: runsc(), stateDir: input.stateDir, log: input.log },
  );
}

/** A GET on the AI code's own socket (what only the worker can reach). */
export function aiCodeGet(socketPath: string, path: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface Generations {
  active: number;
  completed: number;
  aborted: number;
}

export async function generations(socketPath: string): Promise<Generations> {
  return (await aiCodeGet(socketPath, '/healthz')).json.generations as Generations;
}

export async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The encryption proxy in this process, on a unix socket, with every response's buffering observed. */
export class InProcessProxy {
  readonly socketPath: string;
  readonly secretId = randomBytes(16);
  readonly secret = randomBytes(32);
  readonly logs = logSink();
  /** Per request: the largest number of bytes the proxy had queued on the response at once. */
  readonly maxQueuedBytes: number[] = [];
  private server?: Server;
  proxy!: EncryptionProxy;
  key!: CryptoKey;

  constructor(
    private readonly dir: string,
    private readonly aiCodeSocket: () => string | undefined,
  ) {
    this.socketPath = join(dir, 'proxy.sock');
  }

  async start(): Promise<void> {
    this.key = await importInferenceSecret(new Uint8Array(this.secret));
    const key = this.key;
    this.proxy = new EncryptionProxy({
      socketPath: this.aiCodeSocket,
      secrets: { get: async () => key },
      replay: new ReplayGuard(5 * 60_000),
      log: this.logs.log,
    });
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const slot = this.maxQueuedBytes.push(0) - 1;
      const write = res.write.bind(res) as (chunk: Uint8Array) => boolean;
      res.write = ((chunk: Uint8Array) => {
        const ok = write(chunk);
        this.maxQueuedBytes[slot] = Math.max(this.maxQueuedBytes[slot], res.writableLength);
        return ok;
      }) as typeof res.write;
      void this.proxy.handle(req, res);
    });
    await new Promise<void>((r) => this.server!.listen(this.socketPath, r));
  }

  /** Seal a request as the SDK does (same routing split); `raw` exposes the response as it arrives. */
  async seal(method: string, path: string, json: Record<string, unknown> = {}) {
    const { routing, rest } = splitRequestRouting(path, json);
    const body = method === 'GET' ? new Uint8Array(0) : utf8(JSON.stringify(rest));
    const sealed = await sealRequest({ secretKey: this.key, secretId: new Uint8Array(this.secretId), method, path, routing, body, now: Date.now() });
    return { bytes: sealed.bytes, header: sealed.header, opener: new ResponseOpener(sealed.keys.responseKey, sealed.keys.responseIvBase) };
  }

  /** Send a sealed request; resolves with the raw response (not yet read). */
  post(bytes: Uint8Array): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { socketPath: this.socketPath, path: '/v1/inference', method: 'POST', headers: { 'content-type': SEALED_REQUEST_CONTENT_TYPE, 'content-length': bytes.length } },
        resolve,
      );
      req.on('error', reject);
      req.end(Buffer.from(bytes));
    });
  }

  /** A whole sealed exchange: the opened events, the raw bytes and the frame sizes. */
  async call(method: string, path: string, json: Record<string, unknown> = {}): Promise<SealedExchange> {
    const { bytes, header, opener } = await this.seal(method, path, json);
    const res = await this.post(bytes);
    const raw: Buffer[] = [];
    const events: ResponseEvent[] = [];
    for await (const chunk of res) {
      raw.push(chunk as Buffer);
      if (res.statusCode === 200) events.push(...(await opener.push(new Uint8Array(chunk as Buffer))));
    }
    const all = Buffer.concat(raw);
    if (res.statusCode === 200) opener.finish();
    return exchangeOf(res.statusCode ?? 0, header, all, events);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
    await this.proxy?.close();
  }
}

export interface SealedExchange {
  wireStatus: number;
  header: SealedRequestHeader;
  raw: Buffer;
  frameSizes: number[]; // sealed content sizes (padded plaintext + tag), in order
  head?: { status: number; contentType: string };
  body: string;
  complete: boolean;
}

export function frameSizes(raw: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 9 <= raw.length; ) {
    const len = raw.readUInt32BE(i);
    out.push(len);
    i += 9 + len;
  }
  return out;
}

function exchangeOf(wireStatus: number, header: SealedRequestHeader, raw: Buffer, events: ResponseEvent[]): SealedExchange {
  const head = events.find((e) => e.type === 'head') as Extract<ResponseEvent, { type: 'head' }> | undefined;
  const body = Buffer.concat(events.filter((e) => e.type === 'data').map((e) => Buffer.from((e as { bytes: Uint8Array }).bytes))).toString('utf8');
  return {
    wireStatus,
    header,
    raw,
    frameSizes: wireStatus === 200 ? frameSizes(raw) : [],
    ...(head ? { head: { status: head.status, contentType: head.contentType } } : {}),
    body: wireStatus === 200 ? body : raw.toString('utf8'),
    complete: events.some((e) => e.type === 'end'),
  };
}

/** SSE `data:` payloads of a body, parsed. */
export function sseData(body: string): any[] {
  return body
    .split(/\r?\n\r?\n/)
    .map((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
    .filter((d) => d && d !== '[DONE]')
    .map((d) => JSON.parse(d));
}
