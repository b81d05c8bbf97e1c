/**
 * `obscura chat --endpoint URL PROMPT`: one chat completion, sealed in this process and streamed to
 * stdout as it is opened, after the endpoint's attestation was verified against your client policy.
 */
import { parseArgs } from 'node:util';
import { toHex } from '../../../shared/bytes.ts';
import { ObscuraError } from '../../../shared/errors.ts';
import { sseData } from '../../sdk/sse.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { ENDPOINT_OPTIONS, ENDPOINT_USAGE, openEndpoint, responseError } from './endpoint/client.ts';

const DEFAULT_MAX_TOKENS = 256;

const usage = `obscura chat --endpoint URL [--model M] [--max-tokens N] [--json] PROMPT | -

Sends one chat completion: the prompt is sealed in this process to a key only an attested worker can
use, and the answer is streamed to stdout as it is opened (a cut-short or altered stream fails, exit 6).
PROMPT is the rest of the command line; - reads it from stdin.

  --model M         the model (default: the first the endpoint lists, through a sealed GET /v1/models)
  --max-tokens N    longest answer, in tokens (default ${DEFAULT_MAX_TOKENS})
${ENDPOINT_USAGE}
                    (with --json: {model, content, finishReason, usage, ms} once the answer is complete)`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface ChatChunk {
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  error?: { message?: string; code?: string };
}

export const chatCommand: Command = {
  name: 'chat',
  summary: 'send one sealed chat completion to an endpoint and stream the answer to stdout',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...ENDPOINT_OPTIONS, model: { type: 'string' }, 'max-tokens': { type: 'string' }, help: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return EXIT.OK;
    }
    if (positionals.length === 0) throw new ObscuraError('ERR_USAGE', `give the prompt (or - to read it from stdin)\n\n${usage}`);
    const maxTokens = Number(values['max-tokens'] ?? DEFAULT_MAX_TOKENS);
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new ObscuraError('ERR_USAGE', '--max-tokens must be a positive integer');
    const prompt = positionals.length === 1 && positionals[0] === '-' ? await readStdin() : positionals.join(' ');
    if (!prompt.trim()) throw new ObscuraError('ERR_USAGE', 'the prompt is empty');

    const client = openEndpoint(values, io);
    const { obscuraFetch } = client;
    try {
      io.err(`[obscura] verifying the attestation of ${client.endpoint}`);
      const v = await obscuraFetch.session.verified();
      io.err(`[obscura] verified: service measurement ${toHex(v.facts.measurement).slice(0, 16)}…, manifest entry ${v.bundle.chain.length - 1}`);
      let model = values.model;
      if (!model) {
        const res = await obscuraFetch(`${client.endpoint}/v1/models`);
        if (!res.ok) throw await responseError(res, 'listing the models failed');
        model = ((await res.json()) as { data?: { id: string }[] }).data?.[0]?.id;
        if (!model) throw new ObscuraError('ERR_NO_WORKER', 'the endpoint lists no model');
      }
      io.err(`[obscura] sealing the prompt for ${model} and streaming the answer`);
      const started = performance.now();
      const res = await obscuraFetch(`${client.endpoint}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } }),
      });
      if (!res.ok || !res.body) throw await responseError(res, 'the chat completion failed');
      let content = '';
      let finishReason: string | null = null;
      let usage: ChatChunk['usage'] = null;
      try {
        for await (const data of sseData(res.body)) {
          if (data === '[DONE]') continue; // read on to the sealed stream's authenticated end
          let chunk: ChatChunk;
          try {
            chunk = JSON.parse(data) as ChatChunk;
          } catch {
            throw new ObscuraError('ERR_MALFORMED', 'the answer stream carried an event that is not JSON');
          }
          if (chunk.error) throw new ObscuraError('ERR_UPSTREAM', `the answer failed: ${chunk.error.message ?? 'error'}`);
          const choice = chunk.choices?.[0];
          const delta = choice?.delta?.content ?? '';
          if (delta) {
            content += delta;
            if (!values.json) process.stdout.write(delta);
          }
          if (choice?.finish_reason) finishReason = choice.finish_reason;
          if (chunk.usage) usage = chunk.usage;
        }
      } catch (e) {
        if (content && !values.json) process.stdout.write('\n'); // end the cut-short line; the error follows on stderr
        throw e;
      }
      const ms = Math.round(performance.now() - started);
      if (values.json) io.out(JSON.stringify({ ok: true, endpoint: client.endpoint, model, content, finishReason, usage, ms }));
      else process.stdout.write('\n');
      io.err(`[obscura] done: ${usage?.completion_tokens ?? '?'} tokens in ${(ms / 1000).toFixed(1)} s${finishReason ? ` (${finishReason})` : ''}`);
      return EXIT.OK;
    } finally {
      await client.close();
    }
  },
};
