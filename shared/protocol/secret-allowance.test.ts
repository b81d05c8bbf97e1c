/**
 * The allowance formula pinned: tag = HMAC-SHA256(HKDF-SHA256(secret, salt = "", info = label, 32),
 * deterministic CBOR {purpose, sid, fromHead, toHead}). The expected bytes were computed independently
 * (Python hmac/hashlib) from the same inputs.
 */
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../bytes.ts';
import { encodeDeterministic } from '../cbor.ts';
import { importInferenceSecret } from './request-keys.ts';
import { deriveSecretAllowanceKey, encodeSecretAllowance, parseSecretAllowance, signSecretAllowance, verifySecretAllowance } from './secret-allowance.ts';

const secret = new Uint8Array(32).map((_, i) => i);
const fields = { sid: new Uint8Array(16).fill(0x11), fromHead: new Uint8Array(32).fill(0xaa), toHead: new Uint8Array(32).fill(0xbb) };
const SIGNED_HEX = 'a463736964501111111111111111111111111111111166746f486561645820bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb67707572706f7365781b6f6273637572612f76312073656372657420616c6c6f77616e63656866726f6d486561645820aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const TAG_HEX = '195636de01c67b242bc0b3da91cc9bc5b9aac72e6b44c858b4bd405e569bef81';

const keyOf = async (s: Uint8Array) => deriveSecretAllowanceKey(await importInferenceSecret(s));

describe('secret allowance', () => {
  it('signs the pinned bytes with the pinned key', async () => {
    expect(toHex(encodeDeterministic({ purpose: 'obscura/v1 secret allowance', ...fields }))).toBe(SIGNED_HEX);
    const a = await signSecretAllowance(await keyOf(secret), fields);
    expect(toHex(a.tag)).toBe(TAG_HEX);
    await verifySecretAllowance(await keyOf(secret), parseSecretAllowance(encodeSecretAllowance(a)));
  });

  it('does not verify under another secret, or for another sid or head', async () => {
    const a = await signSecretAllowance(await keyOf(secret), fields);
    const other = secret.map((b) => b ^ 1);
    await expect(verifySecretAllowance(await keyOf(other), a)).rejects.toMatchObject({ code: 'ERR_SIGNATURE_INVALID' });
    for (const field of ['sid', 'fromHead', 'toHead'] as const) {
      const changed = { ...a, [field]: a[field].map((b, i) => (i === 0 ? b ^ 1 : b)) };
      await expect(verifySecretAllowance(await keyOf(secret), changed)).rejects.toMatchObject({ code: 'ERR_SIGNATURE_INVALID' });
    }
  });

  it('parses strictly: wrong lengths, unknown fields and bad CBOR are ERR_MALFORMED', async () => {
    const a = await signSecretAllowance(await keyOf(secret), fields);
    const bad = [
      encodeDeterministic({ ...a, sid: new Uint8Array(15) }),
      encodeDeterministic({ ...a, toHead: new Uint8Array(33) }),
      encodeDeterministic({ ...a, tag: a.tag.subarray(0, 16) }),
      encodeDeterministic({ ...a, extra: 1 }),
      encodeDeterministic({ sid: a.sid, fromHead: a.fromHead, toHead: a.toHead }),
      encodeDeterministic([a.sid]),
      fromHex('a1'),
    ];
    for (const bytes of bad) expect(() => parseSecretAllowance(bytes)).toThrow(expect.objectContaining({ code: 'ERR_MALFORMED' }));
  });
});
