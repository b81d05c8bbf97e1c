// The sample AI code: an OpenAI-compatible server (models, chat completions, completions, embeddings,
// streaming) that also serves Triton's generate extension (POST /v2/models/{model}[/versions/{v}]/
// generate and generate_stream), generating text from a word-trigram model. It is a SAMPLE standing in
// for a real engine (vLLM, Triton, llama.cpp...): it runs inside the gVisor sandbox, listens on a unix
// socket, reads its weights from stdin (a pipe from the worker: never a file on disk) and logs no
// request content. It writes with backpressure (a slow reader holds generation back) and stops
// generating when the request's socket closes. GET /healthz (reachable only on its socket, never
// through the encryption proxy) counts generations: active, completed, aborted; no content.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { tokenize } from './build-model.mjs';

const LISTEN = process.env.OBSCURA_LISTEN ?? '/run/obscura/ai.sock';
const MODEL_NAME = process.env.OBSCURA_MODEL_NAME ?? 'sample-ngram';
const TOKENS_PER_SECOND = Number(process.env.OBSCURA_TOKENS_PER_SECOND ?? '0'); // 0 = unpaced
const DEFAULT_MAX_TOKENS = 64;
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const EMBEDDING_DIMENSIONS = 64;

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const model = JSON.parse(await readStdin());
if (model.format !== 'obscura-sample-ngram/1') throw new Error('unknown model format');
const pairs = Object.keys(model.trigrams).sort();
const created = Math.floor(Date.now() / 1000);

function prng(seedBytes) {
  let s = seedBytes.readUInt32LE(0) ^ 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

function* generate(prompt, maxTokens, seed) {
  const words = tokenize(prompt);
  const rand = prng(createHash('sha256').update(`${seed ?? ''}\0${prompt}`).digest());
  let pair;
  for (let i = words.length - 2; i >= 0 && !pair; i--) {
    const key = `${words[i]} ${words[i + 1]}`;
    if (model.trigrams[key]) pair = [words[i], words[i + 1]];
  }
  pair ??= pairs[Math.floor(rand() * pairs.length)].split(' ');
  for (let n = 0; n < maxTokens; n++) {
    let next = model.trigrams[`${pair[0]} ${pair[1]}`];
    if (!next) {
      pair = pairs[Math.floor(rand() * pairs.length)].split(' ');
      next = model.trigrams[`${pair[0]} ${pair[1]}`];
    }
    const entries = Object.entries(next);
    let total = 0;
    for (const [, c] of entries) total += c;
    let r = rand() * total;
    let word = entries[entries.length - 1][0];
    for (const [w, c] of entries) if ((r -= c) < 0) { word = w; break; }
    yield word;
    pair = [pair[1], word];
  }
}

const detok = (word, first) => (/^[.,;:!?]$/.test(word) || first ? word : ` ${word}`);

function promptOf(messages) {
  if (!Array.isArray(messages)) return '';
  return messages
    .map((m) => (typeof m?.content === 'string' ? m.content : Array.isArray(m?.content) ? m.content.map((p) => p?.text ?? '').join(' ') : ''))
    .join('\n');
}

function send(res, status, body) {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Generation counters for /healthz: numbers only. */
const generations = { active: 0, completed: 0, aborted: 0 };

/** Count one generation until its response closes: completed, or aborted when cut short. */
function track(res) {
  generations.active++;
  res.once('close', () => {
    generations.active--;
    if (res.writableFinished) generations.completed++;
    else generations.aborted++;
  });
}

/** Write, and wait for the reader when the socket's buffer is full (or until the socket closes). */
function write(res, text) {
  if (res.write(text) || res.destroyed) return;
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
const countTokens = (text) => tokenize(text).length;

async function complete(req, res, body, kind) {
  const prompt = kind === 'chat' ? promptOf(body.messages) : String(body.prompt ?? '');
  const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? DEFAULT_MAX_TOKENS);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 4096) {
    return send(res, 400, { error: { message: 'max_tokens must be an integer from 1 to 4096', type: 'invalid_request_error' } });
  }
  const n = Number(body.n ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 8) return send(res, 400, { error: { message: 'n must be from 1 to 8', type: 'invalid_request_error' } });
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
  const promptTokens = countTokens(prompt);
  let aborted = false;
  res.on('close', () => { aborted = !res.writableFinished; });
  track(res);

  if (!body.stream) {
    const choices = [];
    let completionTokens = 0;
    for (let i = 0; i < n; i++) {
      let text = '';
      let count = 0;
      for (const w of generate(prompt, maxTokens, `${body.seed ?? ''}/${i}`)) { text += detok(w, count === 0); count++; }
      completionTokens += count;
      choices.push(kind === 'chat'
        ? { index: i, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'length' }
        : { index: i, text, logprobs: null, finish_reason: 'length' });
    }
    if (TOKENS_PER_SECOND > 0) await sleep((completionTokens / TOKENS_PER_SECOND) * 1000);
    return send(res, 200, { id, object, created, model: MODEL_NAME, choices, usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } });
  }

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const event = (choices, extra = {}) => `data: ${JSON.stringify({ id, object: chunkObject, created, model: MODEL_NAME, choices, ...extra })}\n\n`;
  let completionTokens = 0;
  for (let i = 0; i < n && !aborted; i++) {
    if (kind === 'chat') await write(res, event([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
    let count = 0;
    for (const w of generate(prompt, maxTokens, `${body.seed ?? ''}/${i}`)) {
      if (aborted) return;
      const piece = detok(w, count === 0);
      await write(res, event([kind === 'chat' ? { index: i, delta: { content: piece }, logprobs: null, finish_reason: null } : { index: i, text: piece, logprobs: null, finish_reason: null }]));
      count++;
      if (TOKENS_PER_SECOND > 0) await sleep(1000 / TOKENS_PER_SECOND);
    }
    if (aborted) return;
    completionTokens += count;
    await write(res, event([kind === 'chat' ? { index: i, delta: {}, logprobs: null, finish_reason: 'length' } : { index: i, text: '', logprobs: null, finish_reason: 'length' }]));
  }
  if (aborted) return;
  if (body.stream_options?.include_usage) {
    await write(res, event([], { usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } }));
  }
  res.end('data: [DONE]\n\n');
}

// Triton's generate extension: { id?, text_input, parameters?: { max_tokens, stream, seed, ... } } ->
// { id?, model_name, model_version, text_output }; generate_stream sends one SSE `data:` per token.
// Errors are { error: "..." } (before the stream starts, with an HTTP error status).
const TRITON_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/(generate|generate_stream)$/;
const TRITON_PARAMETERS = new Set(['max_tokens', 'stream', 'seed', 'temperature', 'top_p', 'top_k', 'stop', 'end_id', 'pad_id']);

async function tritonGenerate(res, body, match) {
  const [, model, version = '1', kind] = match;
  const sendError = (status, error) => send(res, status, { error });
  if (model !== MODEL_NAME) return sendError(404, `Request for unknown model: '${model.slice(0, 64)}' is not found`);
  if (version !== '1') return sendError(404, `Request for unknown model: '${model}' version ${version.slice(0, 16)} is not found`);
  if (typeof body.text_input !== 'string') return sendError(400, 'text_input must be a string');
  const params = body.parameters ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return sendError(400, 'parameters must be an object');
  for (const [name, value] of Object.entries(params)) {
    // Like a real engine, errors quote what they refuse: the encryption proxy seals them.
    if (!TRITON_PARAMETERS.has(name)) return sendError(400, `unexpected parameter '${name.slice(0, 64)}'`);
    if (['temperature', 'top_p', 'top_k', 'seed'].includes(name) && typeof value !== 'number') {
      return sendError(400, `parameter '${name}' must be a number, not ${JSON.stringify(value).slice(0, 80)}`);
    }
  }
  const maxTokens = Number(params.max_tokens ?? DEFAULT_MAX_TOKENS);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 4096) return sendError(400, 'max_tokens must be an integer from 1 to 4096');
  const base = { ...(typeof body.id === 'string' ? { id: body.id } : {}), model_name: MODEL_NAME, model_version: '1' };
  const seed = params.seed ?? '';
  track(res);

  if (kind === 'generate') {
    let text = '';
    let count = 0;
    for (const w of generate(body.text_input, maxTokens, seed)) { text += detok(w, count === 0); count++; }
    if (TOKENS_PER_SECOND > 0) await sleep((count / TOKENS_PER_SECOND) * 1000);
    return send(res, 200, { ...base, text_output: text });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  let count = 0;
  for (const w of generate(body.text_input, maxTokens, seed)) {
    if (res.destroyed) return;
    await write(res, `data: ${JSON.stringify({ ...base, text_output: detok(w, count === 0) })}\n\n`);
    count++;
    if (TOKENS_PER_SECOND > 0) await sleep(1000 / TOKENS_PER_SECOND);
  }
  if (!res.destroyed) res.end();
}

function embed(input, format) {
  const texts = Array.isArray(input) ? input : [input];
  return texts.map((t, index) => {
    const v = new Array(EMBEDDING_DIMENSIONS).fill(0);
    for (const w of tokenize(String(t))) v[createHash('sha256').update(w).digest()[0] % EMBEDDING_DIMENSIONS] += 1;
    const norm = Math.hypot(...v) || 1;
    const unit = v.map((x) => x / norm);
    // OpenAI's base64 format: little-endian float32s.
    const embedding = format === 'base64' ? Buffer.from(new Float32Array(unit).buffer).toString('base64') : unit;
    return { object: 'embedding', index, embedding };
  });
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/v1/models') {
      return send(res, 200, { object: 'list', data: [{ id: MODEL_NAME, object: 'model', created, owned_by: 'obscura-sample' }] });
    }
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { ok: true, generations });
    if (req.method !== 'POST') return send(res, 404, { error: { message: 'not found', type: 'invalid_request_error' } });
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > MAX_BODY_BYTES) return send(res, 413, { error: { message: 'request body too large', type: 'invalid_request_error' } });
      chunks.push(c);
    }
    let body;
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { return send(res, 400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } }); }
    const triton = TRITON_PATH.exec(req.url ?? '');
    if (triton) return await tritonGenerate(res, body, triton);
    if (body.model !== undefined && body.model !== MODEL_NAME) {
      return send(res, 404, { error: { message: `model ${String(body.model).slice(0, 64)} is not served here`, type: 'invalid_request_error', code: 'model_not_found' } });
    }
    if (req.url === '/v1/chat/completions') return await complete(req, res, body, 'chat');
    if (req.url === '/v1/completions') return await complete(req, res, body, 'text');
    if (req.url === '/v1/embeddings') {
      const data = embed(body.input ?? '', body.encoding_format);
      return send(res, 200, { object: 'list', data, model: MODEL_NAME, usage: { prompt_tokens: 0, total_tokens: 0 } });
    }
    return send(res, 404, { error: { message: 'not found', type: 'invalid_request_error' } });
  } catch {
    if (!res.headersSent) send(res, 500, { error: { message: 'internal error', type: 'server_error' } });
    else res.destroy();
  }
});

try { unlinkSync(LISTEN); } catch {}
server.listen(LISTEN, () => process.stdout.write('ready\n'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
