/**
 * OpenAI features pass through sealed: the official `openai` client → the client proxy → the SDK (the
 * request is split into routing fields and a sealed body) → the real encryption proxy (opens it, the
 * OpenAI adapter puts the routing fields back) → AI code on a unix socket. The AI code here is a fake
 * that records the body it receives, so the test can check that tools, response_format,
 * stream_options.include_usage, n, logprobs and images by URL arrive exactly as the client sent them,
 * and that what it answers (tool calls, several choices, logprobs, usage) comes back unchanged.
 *
 * The attestation and the secret exchange are not part of this path (the spine and the browser tests
 * cover them): the SDK session is handed a secret the encryption proxy also holds.
 */
import { deriveSecretAllowanceKey } from '../../shared/protocol/secret-allowance.ts';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importInferenceSecret } from '../../shared/protocol/request-keys.ts';
import { EncryptionProxy } from '../../backend/encryption-proxy.ts';
import { ReplayGuard } from '../../backend/replay-guard.ts';
import { createClientProxy } from '../../client/proxy/server.ts';
import { createObscuraFetch } from '../../client/sdk/obscura-fetch.ts';
import { parseClientPolicy } from '../../client/sdk/policy.ts';
import { freePort } from '../e2e/harness.ts';

interface Received {
  method: string;
  path: string;
  body: Record<string, any> | undefined;
}

const received: Received[] = [];
const sealedOnTheWire: Buffer[] = [];
const servers: Server[] = [];
let dir: string;
let openai: OpenAI;

/** A fake AI code: records each request, answers in OpenAI's shapes (echoing the request's n and usage option). */
function fakeAiCode(socketPath: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body = text ? (JSON.parse(text) as Record<string, any>) : undefined;
    received.push({ method: req.method ?? '', path: req.url ?? '', body });
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake', object: 'model', created: 0, owned_by: 'test' }] }));
      return;
    }
    const n = (body?.n as number | undefined) ?? 1;
    const base = { id: 'chatcmpl-1', created: 1, model: body?.model };
    const logprobs = body?.logprobs ? { content: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }] }], refusal: null } : null;
    if (body?.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < n; i++) {
        res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: i, delta: { role: 'assistant', content: `answer ${i}` }, logprobs, finish_reason: null }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: i, delta: {}, finish_reason: 'stop' }] })}\n\n`);
      }
      if (body.stream_options?.include_usage) {
        res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 7, completion_tokens: 2 * n, total_tokens: 7 + 2 * n } })}\n\n`);
      }
      res.end('data: [DONE]\n\n');
      return;
    }
    const toolCall = body?.tools ? [{ id: 'call_1', type: 'function', function: { name: body.tools[0].function.name, arguments: '{"city":"Paris"}' } }] : undefined;
    const choices = Array.from({ length: n }, (_, i) => ({
      index: i,
      message: { role: 'assistant', content: toolCall ? null : `answer ${i}`, refusal: null, ...(toolCall ? { tool_calls: toolCall } : {}) },
      logprobs,
      finish_reason: toolCall ? 'tool_calls' : 'stop',
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...base, object: 'chat.completion', choices, usage: { prompt_tokens: 7, completion_tokens: n, total_tokens: 7 + n } }));
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

async function listen(server: Server, port: number): Promise<void> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-passthrough-'));
  const aiSocket = join(dir, 'ai.sock');
  servers.push(await fakeAiCode(aiSocket));

  // The worker side: the real encryption proxy, holding the session's secret.
  const secret = randomBytes(32);
  const key = await importInferenceSecret(new Uint8Array(secret));
  const proxy = new EncryptionProxy({ socketPath: () => aiSocket, secrets: { get: async () => key }, replay: new ReplayGuard(5 * 60_000), log: () => {} });
  const workerPort = await freePort();
  await listen(
    createServer(async (req, res) => {
      // What an edge (or anyone on the network) would see: keep the sealed bytes, pass them on.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => sealedOnTheWire.push(Buffer.concat(chunks)));
      await proxy.handle(req, res);
    }),
    workerPort,
  );

  // The user side: the SDK (with that secret in its session) behind the real client proxy.
  const policy = parseClientPolicy({
    version: 1,
    service: { platform: 'sev-snp', trustedRoots: ['-----BEGIN CERTIFICATE-----\nnot used here\n-----END CERTIFICATE-----'], measurements: ['00'.repeat(48)] },
  });
  const obscuraFetch = createObscuraFetch({ endpoint: `http://127.0.0.1:${workerPort}`, policy });
  const sid = new Uint8Array(randomBytes(16));
  const allowanceKey = await deriveSecretAllowanceKey(key);
  obscuraFetch.session.secret = async () => ({ sid, key, expiresAt: Date.now() + 3_600_000, sealedUnder: new Uint8Array(32), allowanceKey });
  const proxyPort = await freePort();
  await listen(createClientProxy({ obscuraFetch, port: proxyPort }), proxyPort);
  openai = new OpenAI({ baseURL: `http://127.0.0.1:${proxyPort}/v1`, apiKey: 'local', maxRetries: 0 });
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

const IMAGE_URL = `https://images.example/${randomBytes(8).toString('hex')}/cat.png`;
const TOOL_NAME = `get_weather_${randomBytes(4).toString('hex')}`;
const SCHEMA_NAME = `weather_report_${randomBytes(4).toString('hex')}`;

describe('OpenAI request fields reach the AI code unchanged, sealed', () => {
  it('tools, tool_choice, response_format, n, logprobs, an image by URL and the rest', async () => {
    const params = {
      model: 'fake',
      messages: [
        { role: 'system' as const, content: 'You answer with the weather.' },
        {
          role: 'user' as const,
          content: [
            { type: 'text' as const, text: 'What is the weather where this was taken?' },
            { type: 'image_url' as const, image_url: { url: IMAGE_URL, detail: 'low' as const } },
          ],
        },
      ],
      tools: [
        {
          type: 'function' as const,
          function: {
            name: TOOL_NAME,
            description: 'The weather in a city',
            parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
            strict: true,
          },
        },
      ],
      tool_choice: 'auto' as const,
      parallel_tool_calls: false,
      response_format: {
        type: 'json_schema' as const,
        json_schema: { name: SCHEMA_NAME, strict: true, schema: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'], additionalProperties: false } },
      },
      n: 2,
      logprobs: true,
      top_logprobs: 1,
      max_completion_tokens: 50,
      temperature: 0.2,
      seed: 42,
      user: 'user-123',
      metadata: { purpose: 'test' },
    };
    const r = await openai.chat.completions.create(params);
    expect(received.at(-1)).toEqual({ method: 'POST', path: '/v1/chat/completions', body: params });
    // The answer's own features come back unchanged too.
    expect(r.choices).toHaveLength(2);
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    const call = r.choices[0].message.tool_calls?.[0];
    expect(call?.type === 'function' ? call.function : undefined).toEqual({ name: TOOL_NAME, arguments: '{"city":"Paris"}' });
    expect(r.choices[1].logprobs?.content?.[0]).toEqual({ token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }] });
  });

  it('a stream with stream_options.include_usage and n: every choice and the usage chunk arrive', async () => {
    const params = {
      model: 'fake',
      messages: [{ role: 'user' as const, content: 'Say hi' }],
      stream: true as const,
      stream_options: { include_usage: true },
      n: 2,
      logprobs: true,
      max_tokens: 8,
    };
    const stream = await openai.chat.completions.create(params);
    const texts = ['', ''];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(received.at(-1)).toEqual({ method: 'POST', path: '/v1/chat/completions', body: params });
    expect(texts).toEqual(['answer 0', 'answer 1']);
    expect(usage).toEqual({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
  });

  it('only the routing fields were readable on the wire; the rest (tools, schema, image URL) was sealed', () => {
    expect(sealedOnTheWire.length).toBeGreaterThanOrEqual(2);
    const wire = Buffer.concat(sealedOnTheWire);
    for (const secret of [IMAGE_URL, TOOL_NAME, SCHEMA_NAME, 'You answer with the weather', 'user-123', 'Say hi']) {
      expect(wire.includes(Buffer.from(secret)), secret).toBe(false);
    }
    // The model and the routing fields are plaintext (authenticated), for the edge to route by.
    expect(wire.includes(Buffer.from('fake'))).toBe(true);
  });
});
