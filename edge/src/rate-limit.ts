/**
 * Per-key rate limits with the Workers rate limiting binding ([[ratelimits]] in wrangler.toml; wrangler
 * dev and miniflare simulate it in memory). The binding only says yes or no, counting in fixed windows
 * of its period, so Retry-After is the time left in the current window (at most the period).
 */
import { refusal } from './errors.ts';

/** Must equal the `period` of every [[ratelimits]] binding in wrangler.toml (a test checks it). */
export const RATE_LIMIT_PERIOD_S = 60;

export async function rateLimited(limiter: RateLimit | undefined, principal: string, what: string, now = Date.now()): Promise<Response | undefined> {
  if (!limiter) return undefined; // no binding configured: no limit
  let outcome: RateLimitOutcome;
  try {
    outcome = await limiter.limit({ key: principal });
  } catch (e) {
    console.error(JSON.stringify({ event: 'rate-limiter-error', what, message: (e as Error).message }));
    return undefined; // the limiter failing must not take the service down
  }
  if (outcome.success) return undefined;
  const periodMs = RATE_LIMIT_PERIOD_S * 1000;
  const retryAfterS = Math.max(1, Math.ceil((periodMs - (now % periodMs)) / 1000));
  const who = principal.startsWith('key:') ? 'this API key' : 'this client';
  return refusal('ERR_RATE_LIMITED', `too many ${what} requests for ${who}; retry after ${retryAfterS} s`, { 'retry-after': String(retryAfterS) }, { retryAfterSeconds: retryAfterS });
}
