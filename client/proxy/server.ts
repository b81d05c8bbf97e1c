/**
 * The local client proxy: OpenAI-compatible on 127.0.0.1, so any OpenAI client works unchanged while
 * every request is sealed on this machine. It refuses other Host names (DNS rebinding) and any
 * browser Origin (a web page must not be able to use it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { ObscuraError } from '../../shared/errors.ts';
import { httpStatusFor } from '../../shared/protocol/wire-error.ts';
import type { ObscuraFetch } from '../sdk/obscura-fetch.ts';

const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface ClientProxyOptions {
  obscuraFetch: ObscuraFetch;
  port: number;
  host?: string; // 127.0.0.1 unless told otherwise
  log?: (event: Record<string, unknown>) => void;
}

function openAiError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { message, type: 'obscura_error', code, param: null } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function allowedHost(host: string | undefined, port: number): boolean {
  return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new ObscuraError('ERR_MALFORMED', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export function createClientProxy(opts: ClientProxyOptions): Server {
  const log = opts.log ?? (() => {});
  return createServer(async (req, res) => {
    const started = performance.now();
    if (!allowedHost(req.headers.host, opts.port)) {
      return openAiError(res, 403, 'ERR_USAGE', 'this proxy answers only requests addressed to 127.0.0.1 or localhost');
    }
    if (req.headers.origin !== undefined) {
      return openAiError(res, 403, 'ERR_USAGE', 'browser pages may not use the local proxy; use the SDK in the page instead');
    }
    const path = (req.url ?? '/').split('?')[0];
    if (!path.startsWith('/v1/')) return openAiError(res, 404, 'ERR_USAGE', `no route ${path}`);
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
      const upstream = await opts.obscuraFetch(`http://obscura.local${path}`, {
        method: req.method,
        headers: { 'content-type': 'application/json', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) },
        body: body ? new Uint8Array(body) : undefined,
        signal: abort.signal,
      });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json', 'cache-control': 'no-store' });
      if (upstream.body) {
        const stream = Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream<Uint8Array>);
        stream.on('error', (e) => {
          // Opened bytes stop here: tell an SSE client why, then cut the connection so it cannot
          // mistake a cut-short answer for a complete one.
          const code = e instanceof ObscuraError ? e.code : 'ERR_UPSTREAM';
          const message = e instanceof ObscuraError ? e.message : 'the answer stream failed';
          log({ event: 'request', path, outcome: code, ms: Math.round(performance.now() - started) });
          if (abort.signal.aborted) return void res.destroy();
          // Destroy only once the error event is flushed, so the client reads why before the cut.
          stream.unpipe(res);
          res.write(`\n\ndata: ${JSON.stringify({ error: { message, type: 'obscura_error', code } })}\n\n`, () => res.destroy());
        });
        stream.on('end', () => log({ event: 'request', path, status: upstream.status, ms: Math.round(performance.now() - started) }));
        stream.pipe(res);
      } else res.end();
    } catch (e) {
      if (abort.signal.aborted) return;
      const err = e instanceof ObscuraError ? e : new ObscuraError('ERR_UPSTREAM', 'the request failed');
      log({ event: 'request', path, outcome: err.code, ms: Math.round(performance.now() - started) });
      openAiError(res, httpStatusFor(err.code), err.code, err.message);
    }
  });
}
