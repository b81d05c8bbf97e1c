/**
 * An adapter is one AI code API the encryption proxy serves (OpenAI, Triton's generate extension).
 * It says which (method, path) pairs it forwards, and turns an opened request (the sealed body plus
 * the plaintext, authenticated routing fields) back into the body the AI code expects.
 */
import type { RoutingFields } from '../../shared/protocol/constants.ts';

export interface AdapterRoute {
  adapter: string; // 'openai' | 'triton'
  method: 'GET' | 'POST';
  path: string; // forwarded to the AI code unchanged
  /** What the route names in its path (Triton's model), checked against routing.model. */
  pathModel?: string;
}

export interface InferenceAdapter {
  readonly name: string;
  /** The route for (method, path), or undefined when this adapter does not serve it. */
  route(method: string, path: string): AdapterRoute | undefined;
  /**
   * The JSON body for the AI code: the opened (sealed) part with the routing fields put back where the
   * API has them. Throws ERR_MALFORMED for routing fields that this API does not have.
   */
  upstreamBody(route: AdapterRoute, sealed: Record<string, unknown>, routing: RoutingFields): Record<string, unknown>;
}
