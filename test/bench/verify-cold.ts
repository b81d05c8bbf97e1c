/**
 * One cold client check of a bundle, in a fresh process: `node --import tsx test/bench/verify-cold.ts
 * BUNDLE.cbor CLIENT-POLICY.json [NOW_MS]`. Imports are loaded first and not timed; the first
 * verifyBundle call is timed (cold: JIT, WebCrypto, ASN.1/X.509 parsing on first use), then a second
 * one. Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { bundleVerificationOptions, parseClientPolicy } from '../../client/sdk/policy.ts';
import { verifyBundle } from '../../shared/protocol/verify-bundle.ts';

const [bundlePath, policyPath, nowArg] = process.argv.slice(2);
if (!bundlePath || !policyPath) {
  process.stderr.write('usage: verify-cold.ts BUNDLE.cbor CLIENT-POLICY.json [NOW_MS]\n');
  process.exit(2);
}
const importedAtMs = performance.now(); // since this process started (performance.timeOrigin)
const bytes = new Uint8Array(readFileSync(bundlePath));
const p = parseClientPolicy(JSON.parse(readFileSync(policyPath, 'utf8')));
const now = nowArg ? Number(nowArg) : Date.now();
const check = () =>
  verifyBundle(bytes, bundleVerificationOptions(p, now));
const t0 = performance.now();
await check();
const t1 = performance.now();
await check();
const t2 = performance.now();
process.stdout.write(`${JSON.stringify({ firstMs: t1 - t0, secondMs: t2 - t1, importedAtMs, totalMs: t2 })}\n`);
