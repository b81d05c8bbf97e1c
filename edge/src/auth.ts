/**
 * API keys. Apps send `Authorization: Bearer KEY`; the edge stores only SHA-256(KEY) in the API_KEYS
 * KV namespace, under the key `sha256:<hex>` (value: JSON metadata such as {"name": "my-app"}).
 *
 * - Keys configured (API_KEYS holds at least one): a request needs a key whose hash is there.
 * - No key configured and API_KEYS_REQUIRED = "false" (the local deployment): every request is accepted
 *   and marked `Obscura-Auth: open`, so nobody mistakes the deployment for a protected one.
 * - API_KEYS_REQUIRED = "true" (production): a key is always needed; with none configured, everyone is
 *   refused (fail closed).
 *
 * The key itself goes no further than this file: relays build fresh header sets, and only the hash
 * (as the rate-limit key) is used afterwards.
 */
import { sha256, toHex, utf8 } from '../../shared/bytes.ts';
import type { EdgeConfig } from './config.ts';
import type { Env } from './env.ts';
import { refusal } from './errors.ts';

export const API_KEY_PREFIX = 'sha256:';
export const AUTH_HEADER = 'obscura-auth';
/** KV reads of a key record are cached this long at the edge (a revoked key stops working within it). */
const KEY_CACHE_TTL_S = 60;
/** Once keys are seen, the edge stays in key mode this long without listing the namespace again. */
const KEYS_SEEN_MEMO_MS = 60_000;

export type AuthMode = 'open' | 'key';
export type AuthResult = { ok: true; mode: AuthMode; principal: string } | { ok: false; response: Response };

let keysSeenAt = -Infinity; // per isolate; only "keys exist" is remembered, never "no keys"

export async function apiKeyHash(key: string): Promise<string> {
  return toHex(await sha256(utf8(key)));
}

function bearer(request: Request): string | undefined {
  const h = request.headers.get('authorization');
  const m = h ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h) : null;
  return m ? m[1] : undefined;
}

/** Whether API_KEYS holds any key (a KV list of one entry; a positive answer is remembered a while). */
export async function keysConfigured(env: Env, now = Date.now()): Promise<boolean> {
  if (now - keysSeenAt < KEYS_SEEN_MEMO_MS) return true;
  const listed = await env.API_KEYS.list({ prefix: API_KEY_PREFIX, limit: 1 });
  if (listed.keys.length > 0) keysSeenAt = now;
  return listed.keys.length > 0;
}

/** The mode the edge is in, for /healthz and `obscura up`. */
export async function authMode(env: Env, config: EdgeConfig): Promise<'open' | 'keys' | 'closed'> {
  if (await keysConfigured(env)) return 'keys';
  return config.apiKeysRequired ? 'closed' : 'open';
}

export async function authenticate(request: Request, env: Env, config: EdgeConfig): Promise<AuthResult> {
  const key = bearer(request);
  const hash = key ? await apiKeyHash(key) : undefined;
  if (hash) {
    const record = await env.API_KEYS.get(API_KEY_PREFIX + hash, { cacheTtl: KEY_CACHE_TTL_S });
    if (record !== null) {
      keysSeenAt = Date.now();
      return { ok: true, mode: 'key', principal: `key:${hash}` };
    }
  }
  const configured = await keysConfigured(env);
  if (!configured && !config.apiKeysRequired) {
    // Open: anyone may call; limits count per presented key, else per client address.
    const ip = request.headers.get('cf-connecting-ip') ?? 'unknown';
    return { ok: true, mode: 'open', principal: hash ? `key:${hash}` : `ip:${ip}` };
  }
  const headers = { 'www-authenticate': 'Bearer realm="obscura"' };
  if (!configured) {
    return { ok: false, response: refusal('ERR_UNAUTHORIZED', 'this edge requires API keys and none is configured; the operator adds one with edge/scripts/api-key.mjs', headers) };
  }
  if (!request.headers.has('authorization')) {
    return { ok: false, response: refusal('ERR_UNAUTHORIZED', "this edge requires an API key: send 'Authorization: Bearer <key>' (the SDK's `headers` option)", headers) };
  }
  return { ok: false, response: refusal('ERR_UNAUTHORIZED', 'the API key is not valid (or was revoked)', headers) };
}
