/** The AI code APIs the encryption proxy serves, first match wins. */
import { ObscuraError } from '../../shared/errors.ts';
import { openAiAdapter } from './openai.ts';
import { tritonAdapter } from './triton.ts';
import type { AdapterRoute, InferenceAdapter } from './types.ts';

export type { AdapterRoute, InferenceAdapter } from './types.ts';
export { openAiAdapter, tritonAdapter };

export const DEFAULT_ADAPTERS: readonly InferenceAdapter[] = [openAiAdapter, tritonAdapter];

export function routeRequest(adapters: readonly InferenceAdapter[], method: string, path: string): { adapter: InferenceAdapter; route: AdapterRoute } {
  for (const adapter of adapters) {
    const route = adapter.route(method, path);
    if (route) return { adapter, route };
  }
  throw new ObscuraError('ERR_USAGE', `${method.slice(0, 16)} ${path.slice(0, 200)} is not an API this worker serves`);
}
