import { describe, expect, it } from 'vitest';
import { ReplayGuard } from './replay-guard.ts';

describe('ReplayGuard', () => {
  const salt = (n: number) => new Uint8Array(16).fill(n);

  it('refuses a salt seen inside the window', () => {
    const g = new ReplayGuard(1000);
    g.check(salt(1), 10_000, 10_000);
    expect(() => g.check(salt(1), 10_000, 10_100)).toThrow(expect.objectContaining({ code: 'ERR_REPLAY' }));
    g.check(salt(2), 10_000, 10_100);
  });

  it('refuses timestamps outside the window either side', () => {
    const g = new ReplayGuard(1000);
    expect(() => g.check(salt(1), 8_999, 10_000)).toThrow(expect.objectContaining({ code: 'ERR_TIMESTAMP_OUT_OF_WINDOW' }));
    expect(() => g.check(salt(1), 11_001, 10_000)).toThrow(expect.objectContaining({ code: 'ERR_TIMESTAMP_OUT_OF_WINDOW' }));
  });

  it('forgets salts once their timestamps could no longer pass', () => {
    const g = new ReplayGuard(1000);
    for (let i = 0; i < 100; i++) g.check(salt(i), 10_000, 10_000);
    expect(g.size).toBe(100);
    g.check(salt(200), 12_000, 12_000);
    expect(g.size).toBe(1);
  });
});
