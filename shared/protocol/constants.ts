/** Protocol constants: versions, labels and sizes. Units are in the names. */

export const PROTOCOL_VERSION = 1;

/** Content types on the wire. The edge relays only these. */
export const SEALED_REQUEST_CONTENT_TYPE = 'application/obscura-sealed-request+cbor';
export const SEALED_RESPONSE_CONTENT_TYPE = 'application/obscura-sealed-response';
export const BUNDLE_CONTENT_TYPE = 'application/obscura-bundle+cbor';
export const SECRET_CONTENT_TYPE = 'application/obscura-secret+cbor';
export const MODEL_KEY_CONTENT_TYPE = 'application/obscura-model-key+cbor';

/** The OpenAI request fields that stay plaintext (authenticated) so the edge can route. */
export const ROUTING_FIELDS = ['model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'n'] as const;
export type RoutingFieldName = (typeof ROUTING_FIELDS)[number];
export type RoutingFields = Partial<Record<RoutingFieldName, unknown>>;

export const INFERENCE_SECRET_BYTES = 32;
export const SECRET_ID_BYTES = 16;
export const REQUEST_SALT_BYTES = 16;
export const AES_GCM_IV_BYTES = 12;

/** Default limits; the manifest's `limits` override them. */
export const DEFAULT_REPLAY_WINDOW_MS = 5 * 60_000;
export const DEFAULT_SECRET_LIFETIME_MS = 60 * 60_000;
export const DEFAULT_BUNDLE_MAX_AGE_MS = 10 * 60_000;

/** A sealed frame larger than this is refused before any allocation. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const MAX_SEALED_REQUEST_BYTES = 8 * 1024 * 1024;

/**
 * HKDF/HPKE labels: each key has its own (a request's keys and IVs are disjoint slices of one labelled
 * block, request-keys.ts), so no key is ever used for two purposes.
 */
export const LABEL_REQUEST_KEY_BLOCK = 'obscura/v1 request key block';
export const LABEL_SECRET_TO_SERVICE = 'obscura/v1 inference secret to service';
export const LABEL_SECRET_TO_WORKER = 'obscura/v1 inference secret to worker';
export const LABEL_MODEL_KEY_TO_SERVICE = 'obscura/v1 model key to service';
export const LABEL_MODEL_KEY_TO_WORKER = 'obscura/v1 model key to worker';
