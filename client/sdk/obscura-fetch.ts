/**
 * createObscuraFetch: a `fetch` to hand to `new OpenAI({ fetch })`. It seals each OpenAI request on
 * this device, sends it through the edge, and opens the sealed answer (and every streamed event).
 * The OpenAI client sees an ordinary response; a truncated or tampered stream errors, never ends.
 */
import { bufferOf, utf8 } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { SEALED_REQUEST_CONTENT_TYPE, SEALED_RESPONSE_CONTENT_TYPE, type RoutingFields } from '../../shared/protocol/constants.ts';
import { sealRequest, splitRoutingFields } from '../../shared/protocol/sealed-request.ts';
import { ResponseOpener, type ResponseEvent } from '../../shared/protocol/sealed-response.ts';
import { fromWireError } from '../../shared/protocol/wire-error.ts';
import { ObscuraSession, type SessionOptions } from './session.ts';

export type ObscuraFetch = typeof fetch & { session: ObscuraSession };

/** An OpenAI-shaped error body, so OpenAI clients show the message. */
export function openAiErrorResponse(e: ObscuraError, status: number): Response {
  return Response.json({ error: { message: e.message, type: 'obscura_error', code: e.code, param: null } }, { status });
}

/** What a call needs from fetch's arguments. */
interface CallParts {
  url: URL;
  method: string;
  text: string; // the body ('' when none)
  authorization: string | null;
  signal?: AbortSignal;
}

const UTF8 = new TextDecoder(); // replacing bad sequences, as Request.text() does

/**
 * A signal of this call's own that follows the caller's, as `new Request()` makes one: the fetch it is
 * passed to then never sees the caller's object (a signal given `setMaxListeners(0)` trips undici's
 * Request on Node 20, for one).
 */
function followSignal(signal: AbortSignal | null | undefined): AbortSignal | undefined {
  if (!signal) return undefined;
  if (signal.aborted) return AbortSignal.abort(signal.reason);
  const own = new AbortController();
  signal.addEventListener('abort', () => own.abort(signal.reason), { once: true });
  return own.signal;
}

/**
 * Read a fetch call. The OpenAI client passes a URL string and a string body (the client proxy, bytes):
 * those are read as they are, without building a `Request` (which costs more than sealing's own JSON
 * work); anything else goes through `new Request()`, as fetch would.
 */
async function readCall(input: RequestInfo | URL, init: RequestInit | undefined): Promise<CallParts> {
  const body = init?.body;
  const text = body === undefined || body === null ? '' : typeof body === 'string' ? body : body instanceof Uint8Array ? UTF8.decode(body) : undefined;
  if ((typeof input === 'string' || input instanceof URL) && text !== undefined) {
    return {
      url: new URL(input, (globalThis as { location?: { href: string } }).location?.href), // relative to the page, as fetch resolves it
      method: (init?.method ?? 'GET').toUpperCase(),
      text,
      authorization: new Headers(init?.headers).get('authorization'),
      signal: followSignal(init?.signal),
    };
  }
  const req = new Request(input, init);
  return { url: new URL(req.url), method: req.method.toUpperCase(), text: await req.text(), authorization: req.headers.get('authorization'), signal: req.signal };
}

function parseBodyJson(text: string): Record<string, unknown> {
  if (!text) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ObscuraError('ERR_MALFORMED', 'the request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ObscuraError('ERR_MALFORMED', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

/** The API path the worker sees: from the first /v1/ (OpenAI) or /v2/ (Triton) on, whatever the base URL. */
export function apiPath(pathname: string): string {
  const m = /\/v[12]\//.exec(pathname);
  return m ? pathname.slice(m.index) : pathname;
}

const TRITON_GENERATE_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/[^/]+)?\/generate(?:_stream)?$/;

/**
 * Routing fields (plaintext, authenticated) and the rest (sealed). OpenAI: the top-level ROUTING_FIELDS.
 * Triton generate: the model named in the path, and parameters.max_tokens / parameters.stream; the
 * worker puts them back into `parameters` (backend/adapters/triton.ts).
 */
export function splitRequestRouting(path: string, json: Record<string, unknown>): { routing: RoutingFields; rest: Record<string, unknown> } {
  const triton = TRITON_GENERATE_PATH.exec(path);
  if (!triton) return splitRoutingFields(json);
  const routing: RoutingFields = { model: triton[1] };
  const params = json.parameters;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return { routing, rest: json };
  const { max_tokens, stream, ...sealedParams } = params as Record<string, unknown>;
  if (max_tokens !== undefined) routing.max_tokens = max_tokens;
  if (stream !== undefined) routing.stream = stream;
  return { routing, rest: { ...json, parameters: sealedParams } };
}

export function createObscuraFetch(options: SessionOptions): ObscuraFetch {
  const session = new ObscuraSession(options);
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);

  const obscuraFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const { url, method, text, authorization, signal } = await readCall(input, init);
    const path = apiPath(url.pathname);
    const json = method === 'GET' ? {} : parseBodyJson(text);
    const { routing, rest } = splitRequestRouting(path, json);
    const body = method === 'GET' ? new Uint8Array(0) : utf8(JSON.stringify(rest));

    for (let attempt = 0; ; attempt++) {
      const secret = await session.secret();
      const sealed = await sealRequest({ secretKey: secret.key, secretId: secret.sid, method, path, routing, body, now: Date.now() });
      let res: Response;
      try {
        res = await baseFetch(`${session.endpoint}/v1/inference`, {
          method: 'POST',
          headers: { 'content-type': SEALED_REQUEST_CONTENT_TYPE, ...(authorization ? { authorization } : {}), ...options.headers },
          body: bufferOf(sealed.bytes),
          signal,
        });
      } catch (cause) {
        if (signal?.aborted) throw cause;
        throw new ObscuraError('ERR_UPSTREAM', `cannot reach ${session.endpoint}`, { cause });
      }
      if (!(res.headers.get('content-type') ?? '').startsWith(SEALED_RESPONSE_CONTENT_TYPE)) {
        const err = fromWireError(res.status, await res.json().catch(() => undefined));
        // A worker without this secret (restarted, or another region): exchange a new one, once.
        if (attempt === 0 && (err.code === 'ERR_UNKNOWN_SECRET' || err.code === 'ERR_SECRET_EXPIRED')) {
          if (err.code === 'ERR_UNKNOWN_SECRET') await session.recoverSecret(secret.sid);
          else session.invalidateSecret(secret.sid);
          continue;
        }
        return openAiErrorResponse(err, res.status);
      }
      return openSealedResponse(res, new ResponseOpener(sealed.keys.responseKey, sealed.keys.responseIvBase));
    }
  };
  return Object.assign(obscuraFetch as typeof fetch, { session });
}

/** Read until the sealed head, then stream the opened body; errors surface on the stream. */
async function openSealedResponse(res: Response, opener: ResponseOpener): Promise<Response> {
  if (!res.body) throw new ObscuraError('ERR_STREAM_TRUNCATED', 'the sealed response has no body');
  const reader = res.body.getReader();
  const queue: ResponseEvent[] = [];
  let head: Extract<ResponseEvent, { type: 'head' }> | undefined;
  let done = false;

  const pull = async (): Promise<void> => {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (cause) {
      // The connection broke: whatever arrived, the authenticated end did not.
      throw new ObscuraError('ERR_STREAM_TRUNCATED', 'the connection closed before the sealed response\'s authenticated final frame', { cause });
    }
    if (r.done) {
      done = true;
      opener.finish(); // throws ERR_STREAM_TRUNCATED without the authenticated end
      return;
    }
    queue.push(...(await opener.push(r.value)));
  };

  while (!head) {
    if (queue.length === 0) await pull();
    const ev = queue.shift();
    if (ev?.type === 'head') head = ev;
    else if (ev) throw new ObscuraError('ERR_MALFORMED', 'the sealed response did not start with its head');
  }

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const ev = queue.shift();
          if (ev?.type === 'data') {
            controller.enqueue(ev.bytes);
            return;
          }
          if (ev?.type === 'end') {
            controller.close();
            return;
          }
          if (done) throw new ObscuraError('ERR_STREAM_TRUNCATED', 'the sealed response ended before its authenticated final frame');
          await pull();
        }
      } catch (e) {
        await reader.cancel().catch(() => {});
        controller.error(e);
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: head.status, headers: { 'content-type': head.contentType } });
}
