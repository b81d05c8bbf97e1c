// The llama AI code: a real inference engine (llama.cpp through node-llama-cpp, CPU prebuilt binaries)
// behind an OpenAI-compatible server (models, chat completions, completions, streaming) on the unix
// socket OBSCURA_LISTEN. Like any AI code it runs inside the gVisor sandbox: no network, /app read-only
// (this directory, the engine vendored in ./node_modules by prepare.mjs), /tmp an in-memory tmpfs.
//
// The weights arrive on stdin (a pipe from the worker) and go to a 0600 file in /tmp, which in the
// sandbox is tmpfs, i.e. memory, never the host's disk: llama.cpp loads from a path. The name is
// removed once loaded (llama.cpp's mapping keeps the pages). ONE engine lives as long as the process
// (starting one takes seconds under gVisor): getLlama and loadModel once, one context with a small pool
// of sequences, each request taking a sequence and clearing it first, so no prompt's state (KV cache)
// outlives its request or is reused by another one. It logs nothing, least of all request content.
import http from 'node:http';
import { createHash, randomInt } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const env = process.env;
const int = (v, d) => (v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : d);
const LISTEN = env.OBSCURA_LISTEN ?? '/run/obscura/ai.sock';
const MODEL_NAME = env.OBSCURA_MODEL_NAME ?? 'llama';
const THREADS = int(env.OBSCURA_LLAMA_THREADS, 1);
const SEQUENCES = int(env.OBSCURA_LLAMA_SEQUENCES, 2);
const CONTEXT_SIZE = int(env.OBSCURA_LLAMA_CONTEXT_SIZE, 2048);
const SCRATCH_DIR = env.OBSCURA_SCRATCH_DIR ?? tmpdir(); // /tmp: the sandbox's tmpfs
const DEFAULT_MAX_TOKENS = 64;
const MAX_QUEUE = 64;
const MAX_BODY_BYTES = 4 * 1024 * 1024;

// 1. Weights: stdin → tmpfs file.
const weightsDir = mkdtempSync(join(SCRATCH_DIR, 'weights-'));
const modelPath = join(weightsDir, 'model.gguf');
await pipeline(process.stdin, createWriteStream(modelPath, { mode: 0o600, flags: 'wx' }));

// 2. The engine, once.
const { getLlama, LlamaChat, LlamaCompletion, LlamaLogLevel } = await import('node-llama-cpp');
const llama = await getLlama({
  gpu: false,
  build: 'never', // never build from source, and never download anything
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  maxThreads: THREADS,
  logLevel: LlamaLogLevel.error,
  logger: () => {}, // llama.cpp's log lines are dropped
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
unlinkSync(modelPath);
rmSync(weightsDir, { recursive: true, force: true });
const context = await model.createContext({ contextSize: Math.min(CONTEXT_SIZE, model.trainContextSize), sequences: SEQUENCES, threads: THREADS });
const created = Math.floor(Date.now() / 1000);

const free = [];
for (let i = 0; i < SEQUENCES; i++) {
  const sequence = context.getSequence();
  free.push({ sequence, chat: new LlamaChat({ contextSequence: sequence }), completion: new LlamaCompletion({ contextSequence: sequence }) });
}
const waiting = [];
const acquire = () => (free.length ? Promise.resolve(free.pop()) : new Promise((resolve) => waiting.push(resolve)));
const release = (slot) => {
  const next = waiting.shift();
  if (next) next(slot);
  else free.push(slot);
};

class RequestError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

function chatHistory(messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw new RequestError(400, 'messages must be a non-empty array');
  return messages.map((m) => {
    const text = textOf(m?.content);
    if (m?.role === 'system' || m?.role === 'developer') return { type: 'system', text };
    if (m?.role === 'assistant') return { type: 'model', response: [text] };
    return { type: 'user', text };
  });
}

function samplingOf(body) {
  const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? DEFAULT_MAX_TOKENS);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 4096) throw new RequestError(400, 'max_tokens must be an integer from 1 to 4096');
  const n = Number(body.n ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 8) throw new RequestError(400, 'n must be from 1 to 8');
  const temperature = Number(body.temperature ?? 1);
  if (!(temperature >= 0 && temperature <= 2)) throw new RequestError(400, 'temperature must be from 0 to 2');
  const topP = Number(body.top_p ?? 1);
  if (!(topP > 0 && topP <= 1)) throw new RequestError(400, 'top_p must be in (0, 1]');
  const seed = body.seed === undefined || body.seed === null ? undefined : Number(body.seed);
  if (seed !== undefined && !Number.isSafeInteger(seed)) throw new RequestError(400, 'seed must be an integer');
  const stop = body.stop === undefined || body.stop === null ? [] : Array.isArray(body.stop) ? body.stop : [body.stop];
  if (stop.length > 4 || stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new RequestError(400, 'stop must be up to 4 non-empty strings');
  return { maxTokens, n, temperature, topP, seed, stop };
}

/** Prompt token count, refusing prompts the context cannot hold. */
function promptTokens(slot, kind, input) {
  const tokens = kind === 'chat'
    ? slot.chat.chatWrapper.generateContextState({ chatHistory: [...input, { type: 'model', response: [] }] }).contextText.tokenize(model.tokenizer)
    : model.tokenize(input);
  if (tokens.length >= context.contextSize) {
    throw new RequestError(400, `the prompt is ${tokens.length} tokens; this model's context holds ${context.contextSize}`, 'context_length_exceeded');
  }
  return tokens.length;
}

/** One choice on a sequence that was just cleared. */
async function generate(slot, kind, input, s, seed, onText, signal) {
  await slot.sequence.clearHistory();
  let tokens = 0;
  const options = {
    maxTokens: s.maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    seed,
    signal,
    stopOnAbortSignal: true,
    trimWhitespaceSuffix: false,
    customStopTriggers: s.stop.length ? s.stop : undefined,
    onTextChunk: onText,
    onToken: (t) => {
      tokens += t.length;
    },
  };
  const r = kind === 'chat' ? await slot.chat.generateResponse(input, options) : await slot.completion.generateCompletionWithMeta(input, options);
  return { text: r.response, tokens, finish: r.metadata.stopReason === 'maxTokens' ? 'length' : 'stop' };
}

function send(res, status, body) {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

async function complete(res, body, kind) {
  const s = samplingOf(body);
  const input = kind === 'chat' ? chatHistory(body.messages) : textOf(body.prompt);
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  if (waiting.length >= MAX_QUEUE) throw new RequestError(503, 'the engine is busy', 'overloaded');
  const slot = await acquire();
  try {
    if (abort.signal.aborted) return;
    const prompt = promptTokens(slot, kind, input);
    const seedOf = (i) => (s.seed === undefined ? randomInt(2 ** 31) : s.seed + i);

    if (!body.stream) {
      const choices = [];
      let completion = 0;
      for (let i = 0; i < s.n && !abort.signal.aborted; i++) {
        const g = await generate(slot, kind, input, s, seedOf(i), undefined, abort.signal);
        completion += g.tokens;
        choices.push(kind === 'chat'
          ? { index: i, message: { role: 'assistant', content: g.text, refusal: null }, logprobs: null, finish_reason: g.finish }
          : { index: i, text: g.text, logprobs: null, finish_reason: g.finish });
      }
      if (abort.signal.aborted) return;
      return send(res, 200, { id, object, created, model: MODEL_NAME, choices, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } });
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const event = (choices, extra = {}) => `data: ${JSON.stringify({ id, object: chunkObject, created, model: MODEL_NAME, choices, ...extra })}\n\n`;
    const piece = (i, text, finish = null) => (kind === 'chat'
      ? { index: i, delta: finish ? {} : { content: text }, logprobs: null, finish_reason: finish }
      : { index: i, text, logprobs: null, finish_reason: finish });
    let completion = 0;
    for (let i = 0; i < s.n && !abort.signal.aborted; i++) {
      if (kind === 'chat') res.write(event([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
      const g = await generate(slot, kind, input, s, seedOf(i), (text) => {
        if (text && !abort.signal.aborted) res.write(event([piece(i, text)]));
      }, abort.signal);
      if (abort.signal.aborted) return;
      completion += g.tokens;
      res.write(event([piece(i, '', g.finish)]));
    }
    if (abort.signal.aborted) return;
    if (body.stream_options?.include_usage) {
      res.write(event([], { usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }));
    }
    res.end('data: [DONE]\n\n');
  } finally {
    await slot.sequence.clearHistory().catch(() => {});
    release(slot);
  }
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/v1/models') {
      return send(res, 200, { object: 'list', data: [{ id: MODEL_NAME, object: 'model', created, owned_by: 'obscura-llama' }] });
    }
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { ok: true });
    if (req.method !== 'POST') return send(res, 404, { error: { message: 'not found', type: 'invalid_request_error' } });
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > MAX_BODY_BYTES) return send(res, 413, { error: { message: 'request body too large', type: 'invalid_request_error' } });
      chunks.push(c);
    }
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
    }
    if (body === null || typeof body !== 'object') return send(res, 400, { error: { message: 'body is not a JSON object', type: 'invalid_request_error' } });
    if (body.model !== undefined && body.model !== MODEL_NAME) {
      return send(res, 404, { error: { message: `model ${String(body.model).slice(0, 64)} is not served here`, type: 'invalid_request_error', code: 'model_not_found' } });
    }
    if (req.url === '/v1/chat/completions') return await complete(res, body, 'chat');
    if (req.url === '/v1/completions') return await complete(res, body, 'text');
    return send(res, 404, { error: { message: 'not found', type: 'invalid_request_error' } });
  } catch (e) {
    if (e instanceof RequestError && !res.headersSent) {
      return send(res, e.status, { error: { message: e.message, type: e.status >= 500 ? 'server_error' : 'invalid_request_error', ...(e.code ? { code: e.code } : {}) } });
    }
    if (!res.headersSent) send(res, 500, { error: { message: 'internal error', type: 'server_error' } });
    else res.destroy();
  }
});

try {
  unlinkSync(LISTEN);
} catch {}
server.listen(LISTEN, () => process.stdout.write('ready\n'));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    void llama.dispose().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
