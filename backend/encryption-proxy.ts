/**
 * The encryption proxy: opens a sealed request, hands the plaintext to the AI code over its in-memory
 * unix socket, and seals the answer back frame by frame (one SSE event per frame, padded), with
 * backpressure and cancellation. Plaintext exists only in this process's memory.
 *
 * Which APIs it forwards is up to its adapters (backend/adapters/): OpenAI and Triton's generate
 * extension. The AI code's status and content type travel in the sealed head frame, so an error the
 * AI code answers (which may quote the prompt) is as sealed as an answer.
 * Backpressure: frames are written only once the client has taken the previous ones ('drain'), and
 * the AI code's body is read only as fast as that, so a slow reader holds back the AI code instead
 * of filling this process's memory. A client that goes away aborts the request to the AI code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Pool } from 'undici';
import { fromUtf8, utf8 } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { MAX_SEALED_REQUEST_BYTES, SEALED_REQUEST_CONTENT_TYPE, SEALED_RESPONSE_CONTENT_TYPE } from '../shared/protocol/constants.ts';
import { openRequest, parseSealedRequest, type OpenedRequest } from '../shared/protocol/sealed-request.ts';
import { ResponseSealer } from '../shared/protocol/sealed-response.ts';
import { toWireError } from '../shared/protocol/wire-error.ts';
import { DEFAULT_ADAPTERS, routeRequest, type AdapterRoute, type InferenceAdapter } from './adapters/index.ts';
import type { ReplayGuard } from './replay-guard.ts';

const MAX_FRAME_CONTENT_BYTES = 64 * 1024;
/** Sealed frames written together at most (one event each when streaming). */
const MAX_FRAMES_PER_WRITE = 16;
/** Connections to the AI code's socket, at most: one per request in flight, kept alive (at 64, 200 streams queued in the worker: test/bench/README.md). */
const AI_CODE_CONNECTIONS = 256;

/** Where the proxy gets the keys of inference secrets (the SecretCache). */
export interface SecretSource {
  get(sid: Uint8Array): Promise<CryptoKey>;
}

export interface ProxyLog {
  (event: Record<string, string | number | boolean>): void;
}

export interface EncryptionProxyOptions {
  socketPath: () => string | undefined; // undefined while the AI code is not running
  secrets: SecretSource;
  replay: ReplayGuard;
  adapters?: readonly InferenceAdapter[]; // default: OpenAI and Triton generate
  paddingBuckets?: readonly number[];
  now?: () => number;
  log: ProxyLog;
}

export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limitBytes) throw new ObscuraError('ERR_MALFORMED', `the request body is larger than ${limitBytes} bytes`);
    chunks.push(c as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export function sendWireError(res: ServerResponse, e: unknown): void {
  const { status, body } = toWireError(e);
  if (res.headersSent) {
    res.destroy(); // mid-stream: cut the connection so the client sees a truncated stream, not an end
    return;
  }
  const bytes = utf8(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

/** Split an SSE byte stream into whole events so each is sealed (and padded) on its own. */
class SseSplitter {
  private pending = '';
  push(text: string): string[] {
    this.pending += text;
    const out: string[] = [];
    let m: RegExpExecArray | null;
    while ((m = /\r?\n\r?\n/.exec(this.pending))) {
      const end = m.index + m[0].length;
      out.push(this.pending.slice(0, end));
      this.pending = this.pending.slice(end);
    }
    return out;
  }
  rest(): string {
    const r = this.pending;
    this.pending = '';
    return r;
  }
}

/**
 * Whether a promise settles without waiting on I/O (already-buffered stream data, an ended stream):
 * setImmediate runs only after the callbacks and microtasks that such a promise settles in.
 */
function settlesWithoutIo(p: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setImmediate(() => resolve(false));
    p.then(
      () => {
        clearImmediate(timer);
        resolve(true);
      },
      () => {
        clearImmediate(timer);
        resolve(true); // the error surfaces where the promise is awaited
      },
    );
  });
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ObscuraError('ERR_MALFORMED', 'the sealed request body is not a JSON object');
  }
  return value as Record<string, unknown>;
}

export class EncryptionProxy {
  private client?: { path: string; client: Pool };

  constructor(private readonly opts: EncryptionProxyOptions) {}

  private upstream(): Pool {
    const path = this.opts.socketPath();
    if (!path) throw new ObscuraError('ERR_UPSTREAM', 'the AI code is not running; try again shortly');
    if (this.client?.path !== path) {
      void this.client?.client.close();
      // Kept-alive connections, one per concurrent request: a single connection would queue every
      // stream behind the one before it.
      this.client = { path, client: new Pool('http://ai-code', { socketPath: path, connections: AI_CODE_CONNECTIONS, keepAliveTimeout: 10_000, pipelining: 1 }) };
    }
    return this.client.client;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const now = (this.opts.now ?? Date.now)();
    // From the start: a client that goes away while its request is being opened cancels it too.
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(); // client went away: cancel the AI code's work
    };
    res.on('close', onClose);
    let opened: OpenedRequest;
    let routed: { adapter: InferenceAdapter; route: AdapterRoute };
    try {
      if (!String(req.headers['content-type'] ?? '').startsWith(SEALED_REQUEST_CONTENT_TYPE)) {
        throw new ObscuraError('ERR_PLAINTEXT_REFUSED', `only sealed requests (${SEALED_REQUEST_CONTENT_TYPE}) are accepted`);
      }
      const sealed = parseSealedRequest(await readBody(req, MAX_SEALED_REQUEST_BYTES));
      const key = await this.opts.secrets.get(sealed.sid);
      opened = await openRequest(sealed, key);
      // Replay is checked after the seal opens, so a forged envelope cannot burn a real salt.
      this.opts.replay.check(sealed.salt, sealed.ts, now);
      routed = routeRequest(this.opts.adapters ?? DEFAULT_ADAPTERS, opened.header.method, opened.header.path);
    } catch (e) {
      res.off('close', onClose);
      this.opts.log({ event: 'inference', outcome: (e as ObscuraError).code ?? 'error', ms: Math.round(performance.now() - started) });
      sendWireError(res, e);
      return;
    }
    try {
      await this.forward(opened, routed, res, abort, started);
    } finally {
      res.off('close', onClose);
    }
  }

  private async forward(
    opened: OpenedRequest,
    routed: { adapter: InferenceAdapter; route: AdapterRoute },
    res: ServerResponse,
    abort: AbortController,
    started: number,
  ): Promise<void> {
    const { header, keys } = opened;
    const { adapter, route } = routed;
    const sealer = new ResponseSealer(keys.responseKey, keys.responseIvBase, this.opts.paddingBuckets);
    let upstreamStatus = 0;
    let frames = 0;
    let completed = false;
    // Frames are sealed as soon as their content is here and written in order, several per write when
    // they are ready together (the head, a non-streamed body and the end usually are): one TLS record
    // and one wake-up of the client instead of one per frame.
    const queued: Promise<Uint8Array>[] = [];
    let queuedBytes = 0;
    const enqueue = (frame: Promise<Uint8Array>, contentBytes: number) => {
      queued.push(frame);
      queuedBytes += contentBytes;
    };
    const flush = async () => {
      const batch = await Promise.all(queued.splice(0));
      queuedBytes = 0;
      if (abort.signal.aborted) throw new ObscuraError('ERR_UPSTREAM', 'the client went away');
      let ok = true;
      for (const frame of batch) ok = res.write(frame) && ok; // one tick: Node writes them in one go
      frames += batch.length;
      // Backpressure: wait until the client took it (or went away: the signal ends the wait).
      if (!ok) await once(res, 'drain', { signal: abort.signal });
    };
    let upBody: { destroy(): unknown } | undefined;
    try {
      if (abort.signal.aborted) throw new ObscuraError('ERR_UPSTREAM', 'the client went away');
      const body = route.method === 'POST' ? JSON.stringify(adapter.upstreamBody(route, parseJsonObject(opened.body), header.routing)) : undefined;
      const up = await this.upstream().request({
        path: route.path,
        method: route.method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body,
        signal: abort.signal,
      });
      upBody = up.body;
      upstreamStatus = up.statusCode;
      const contentType = String(up.headers['content-type'] ?? 'application/json');
      res.writeHead(200, { 'content-type': SEALED_RESPONSE_CONTENT_TYPE, 'cache-control': 'no-store' });
      const sse = contentType.startsWith('text/event-stream') ? new SseSplitter() : undefined;
      // A non-streamed answer is held back with its head while its bytes keep arriving without a wait:
      // when it is whole by then, it goes as one complete frame (one seal, one open); otherwise as a head
      // and data frames, as a stream does.
      let held: Buffer[] | undefined = sse ? undefined : [];
      let heldBytes = 0;
      const release = () => {
        enqueue(sealer.head(up.statusCode, contentType), 0);
        for (const bytes of held ?? []) enqueueData(bytes);
        held = undefined;
      };
      const enqueueData = (bytes: Buffer) => {
        for (let i = 0; i < bytes.length; i += MAX_FRAME_CONTENT_BYTES) {
          const content = new Uint8Array(bytes.subarray(i, i + MAX_FRAME_CONTENT_BYTES));
          enqueue(sealer.data(content), content.length);
        }
      };
      if (!held) release();
      const decoder = new TextDecoder();
      const chunks = up.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      for (;;) {
        // Write what is sealed before waiting on the AI code; when its next bytes are already here, they
        // join the same write (bounded, so a fast AI code still meets the client's backpressure).
        const next = chunks.next();
        next.catch(() => {}); // awaited below; when a write fails first, its rejection must not go unheard
        const mustWait = !(await settlesWithoutIo(next));
        if (held && (mustWait || heldBytes >= MAX_FRAME_CONTENT_BYTES)) release();
        if (queued.length >= MAX_FRAMES_PER_WRITE || queuedBytes >= MAX_FRAME_CONTENT_BYTES || mustWait) await flush();
        const r = await next;
        if (r.done) break;
        const bytes = r.value;
        if (held) {
          held.push(bytes);
          heldBytes += bytes.length;
        } else if (sse) {
          for (const ev of sse.push(decoder.decode(bytes, { stream: true }))) {
            const content = utf8(ev);
            enqueue(sealer.data(content), content.length);
          }
        } else {
          enqueueData(bytes);
        }
      }
      if (held) {
        enqueue(sealer.complete(up.statusCode, contentType, new Uint8Array(Buffer.concat(held))), heldBytes);
      } else {
        const rest = sse?.rest();
        if (rest) enqueue(sealer.data(utf8(rest)), rest.length);
        enqueue(sealer.end(), 0);
      }
      await flush();
      res.end();
      completed = true;
    } catch (e) {
      upBody?.destroy(); // stop reading the AI code's answer (a no-op once it ended)
      // Sealing runs ahead of writing: a frame whose write never comes must not leave a rejection unheard.
      for (const frame of queued.splice(0)) frame.catch(() => {});
      if (!abort.signal.aborted) {
        // The AI code failed (crashed, reset): never send the final frame, so the client cannot
        // mistake a cut-short answer for a complete one.
        sendWireError(res, res.headersSent || e instanceof ObscuraError ? e : new ObscuraError('ERR_UPSTREAM', 'the AI code did not answer'));
      }
    } finally {
      this.opts.log({
        event: 'inference',
        adapter: adapter.name,
        path: header.path,
        stream: header.routing.stream === true || header.path.endsWith('/generate_stream'),
        status: upstreamStatus,
        frames,
        outcome: abort.signal.aborted ? 'cancelled' : completed ? 'ok' : 'failed',
        ms: Math.round(performance.now() - started),
      });
    }
  }

  async close(): Promise<void> {
    await this.client?.client.close();
  }
}
