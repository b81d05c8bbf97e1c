/**
 * Refuses a request salt seen within the replay window and any timestamp outside it. Memory is
 * bounded by the window: entries older than it are dropped, since their timestamps would fail anyway.
 */
import { toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';

export class ReplayGuard {
  private readonly seen = new Map<string, number>(); // salt hex -> expiry (ms)
  private lastSweep = 0;

  constructor(private readonly windowMs: number) {}

  check(salt: Uint8Array, timestampMs: number, now: number): void {
    if (Math.abs(now - timestampMs) > this.windowMs) {
      throw new ObscuraError('ERR_TIMESTAMP_OUT_OF_WINDOW', `the request timestamp is outside the ${this.windowMs} ms replay window: check the client clock`);
    }
    this.sweep(now);
    const key = toHex(salt);
    if (this.seen.has(key)) throw new ObscuraError('ERR_REPLAY', 'this sealed request was already received: replays are refused');
    this.seen.set(key, timestampMs + this.windowMs);
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 1_000) return;
    this.lastSweep = now;
    for (const [k, expiry] of this.seen) if (expiry < now) this.seen.delete(k);
  }
}
