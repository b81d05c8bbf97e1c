/**
 * The OpenAI adapter: models, chat completions, completions and embeddings; streaming answers are SSE.
 * Routing fields (model, stream, stream_options, max_tokens, max_completion_tokens, n) are top-level
 * body fields: the client lifts them out of the sealed body, and they go back in unchanged.
 */
import { mergeRoutingFields } from '../../shared/protocol/sealed-request.ts';
import type { AdapterRoute, InferenceAdapter } from './types.ts';

const ROUTES = new Set(['GET /v1/models', 'POST /v1/chat/completions', 'POST /v1/completions', 'POST /v1/embeddings']);

export const openAiAdapter: InferenceAdapter = {
  name: 'openai',
  route(method, path) {
    if (!ROUTES.has(`${method} ${path}`)) return undefined;
    return { adapter: 'openai', method: method as AdapterRoute['method'], path };
  },
  upstreamBody(_route, sealed, routing) {
    return mergeRoutingFields(sealed, routing);
  },
};
