/**
 * The pkijs crypto engine, bound to the platform's WebCrypto (`globalThis.crypto`), which is the
 * same object in Node 20+, workerd and browsers. Every pkijs call in this layer is handed this
 * engine explicitly rather than relying on pkijs's process-global one, which another library may
 * have replaced.
 */
import { CryptoEngine, type ICryptoEngine, getCrypto, setEngine } from 'pkijs';
import { ObscuraError } from '../../errors.ts';

let engine: ICryptoEngine | undefined;

export function pkijsEngine(): ICryptoEngine {
  if (engine) return engine;
  const webcrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (!webcrypto?.subtle) throw new ObscuraError('ERR_USAGE', 'WebCrypto (globalThis.crypto.subtle) is not available');
  // The cast: under @cloudflare/workers-types, pkijs's DOM-typed CryptoEngine declaration does not
  // structurally match its own ICryptoEngine; at run time it is the same object.
  engine = new CryptoEngine({ name: 'obscura-webcrypto', crypto: webcrypto }) as unknown as ICryptoEngine;
  // pkijs code paths that take no engine argument use its global one: make sure there is one.
  let global: unknown = null;
  try {
    global = getCrypto();
  } catch {
    global = null;
  }
  if (!global) setEngine('obscura-webcrypto', engine);
  return engine;
}
