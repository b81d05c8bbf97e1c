/** The edge's settings, parsed from its string vars (wrangler.toml) with safe defaults. */
import type { Env } from './env.ts';

export interface EdgeConfig {
  asUrl: string;
  bundleMaxAgeMs: number;
  bundleFreshMs: number;
  regionCooldownMs: number;
  relayHeadersTimeoutMs: number;
  apiKeysRequired: boolean;
}

function ms(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(n) && n >= 0 ? n : fallback;
}

export function edgeConfig(env: Env): EdgeConfig {
  return {
    asUrl: (env.AS_URL ?? '').replace(/\/+$/, ''),
    bundleMaxAgeMs: ms(env.BUNDLE_MAX_AGE_MS, 10 * 60_000),
    bundleFreshMs: ms(env.BUNDLE_FRESH_MS, 60_000),
    regionCooldownMs: ms(env.REGION_COOLDOWN_MS, 30_000),
    relayHeadersTimeoutMs: ms(env.RELAY_HEADERS_TIMEOUT_MS, 100_000),
    // Anything but an explicit "false" requires keys: a typo fails closed.
    apiKeysRequired: (env.API_KEYS_REQUIRED ?? 'false').trim().toLowerCase() !== 'false',
  };
}

export type UpstreamFetch = (url: string, init?: RequestInit<RequestInitCfProperties>) => Promise<Response>;

/**
 * How the edge reaches workers and the attestation service: through the mTLS certificate binding when
 * there is one (production: the edge presents its client certificate), plain fetch otherwise (local).
 * Only the URL and the init given here are sent: no header of the client's request is ever passed on.
 */
export function upstreamFetch(env: Env): UpstreamFetch {
  const mtls = env.UPSTREAM_MTLS;
  return mtls ? (url, init) => mtls.fetch(url, init) : (url, init) => fetch(url, init);
}
