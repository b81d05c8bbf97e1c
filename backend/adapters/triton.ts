/**
 * The Triton generate adapter (Triton Inference Server's generate extension):
 *   POST /v2/models/{model}[/versions/{version}]/generate         one JSON answer
 *   POST /v2/models/{model}[/versions/{version}]/generate_stream  SSE, one `data: {...}` per response
 * Request `{ id?, text_input, parameters?: { max_tokens, stream, temperature, ... }, ... }`; answer
 * `{ id?, model_name, model_version, text_output }`, errors `{ error }`.
 *
 * Routing (plaintext, authenticated): the model is in the path (the envelope authenticates the path),
 * and the SDK copies it into routing.model so the edge routes by model as it does for OpenAI;
 * `parameters.max_tokens` and `parameters.stream` travel as routing.max_tokens / routing.stream (the
 * size and shape of the answer, as OpenAI's max_tokens and stream do). Everything else (text_input,
 * id, every other parameter, any other field) is sealed.
 */
import { ObscuraError } from '../../shared/errors.ts';
import type { AdapterRoute, InferenceAdapter } from './types.ts';

const GENERATE = /^\/v2\/models\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:\/versions\/([0-9]{1,9}))?\/(generate|generate_stream)$/;
const TRITON_ROUTING = new Set(['model', 'max_tokens', 'stream']);

export const tritonAdapter: InferenceAdapter = {
  name: 'triton',
  route(method, path) {
    const m = GENERATE.exec(path);
    if (method !== 'POST' || !m) return undefined;
    return { adapter: 'triton', method: 'POST', path, pathModel: m[1] };
  },
  upstreamBody(route, sealed, routing) {
    for (const key of Object.keys(routing)) {
      if (!TRITON_ROUTING.has(key)) throw new ObscuraError('ERR_MALFORMED', `routing field ${key} does not apply to Triton's generate API`);
    }
    if (routing.model !== undefined && routing.model !== route.pathModel) {
      throw new ObscuraError('ERR_MALFORMED', 'routing.model differs from the model named in the path');
    }
    const lifted: Record<string, unknown> = {};
    if (routing.max_tokens !== undefined) lifted.max_tokens = routing.max_tokens;
    if (routing.stream !== undefined) lifted.stream = routing.stream;
    if (Object.keys(lifted).length === 0) return sealed;
    const params = sealed.parameters;
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      throw new ObscuraError('ERR_MALFORMED', 'parameters must be a JSON object');
    }
    return { ...sealed, parameters: { ...(params as Record<string, unknown> | undefined), ...lifted } };
  },
};
