import { expect, it } from 'vitest';
import { sha256, toHex, utf8 } from '../../shared/bytes.ts';
it('runs in workerd', async () => {
  expect(navigator.userAgent).toBe('Cloudflare-Workers');
  expect(toHex(await sha256(utf8('abc')))).toMatch(/^ba7816bf/);
});
