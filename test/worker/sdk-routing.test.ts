/** The SDK's side of the adapters: which path the worker sees, and which fields stay routing. */
import { describe, expect, it } from 'vitest';
import { apiPath, splitRequestRouting } from '../../client/sdk/obscura-fetch.ts';

describe('apiPath', () => {
  it('keeps the API path from the first /v1/ or /v2/ on, whatever the base URL', () => {
    expect(apiPath('/v1/chat/completions')).toBe('/v1/chat/completions');
    expect(apiPath('/proxy/prefix/v1/models')).toBe('/v1/models');
    expect(apiPath('/v2/models/m/generate')).toBe('/v2/models/m/generate');
    expect(apiPath('/triton/v2/models/m/versions/2/generate_stream')).toBe('/v2/models/m/versions/2/generate_stream');
    // A model named like a version prefix is not mistaken for the API root.
    expect(apiPath('/v2/models/v1/generate')).toBe('/v2/models/v1/generate');
  });
});

describe('splitRequestRouting', () => {
  it('OpenAI: the top-level routing fields', () => {
    expect(splitRequestRouting('/v1/chat/completions', { model: 'm', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'x' }] })).toEqual({
      routing: { model: 'm', max_tokens: 5, stream: true },
      rest: { messages: [{ role: 'user', content: 'x' }] },
    });
  });

  it('Triton generate: the path model, parameters.max_tokens and parameters.stream; the rest sealed', () => {
    expect(
      splitRequestRouting('/v2/models/m/versions/1/generate_stream', { id: 'q', text_input: 'secret', model: 'not-routing', parameters: { max_tokens: 9, stream: true, temperature: 0.1 } }),
    ).toEqual({
      routing: { model: 'm', max_tokens: 9, stream: true },
      rest: { id: 'q', text_input: 'secret', model: 'not-routing', parameters: { temperature: 0.1 } },
    });
    expect(splitRequestRouting('/v2/models/m/generate', { text_input: 'secret' })).toEqual({ routing: { model: 'm' }, rest: { text_input: 'secret' } });
  });
});
