#!/usr/bin/env node
/**
 * API keys for the edge: the edge keeps only SHA-256(key), as the KV key "sha256:<hex>" in the API_KEYS
 * namespace. This script makes keys and writes or deletes their hashes with `wrangler kv key`.
 *
 *   node edge/scripts/api-key.mjs add [--name NAME] [--env production] [--dry-run]
 *   node edge/scripts/api-key.mjs revoke KEY|sha256:HEX [--env production]
 *   node edge/scripts/api-key.mjs list [--env production]
 *   node edge/scripts/api-key.mjs hash KEY
 *
 * Without --env it works on the LOCAL deployment's KV (the one `npm start` uses:
 * --persist-to $OBSCURA_STATE_DIR/wrangler, default .obscura/wrangler; pass --persist-to to change it).
 * With --env production it works on the production namespace (--remote; needs `wrangler login`).
 * `add` prints the key once; it is not stored anywhere. --dry-run prints the wrangler command instead.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PREFIX = 'sha256:';
const BINDING = 'API_KEYS';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: 'string' },
    env: { type: 'string' },
    'persist-to': { type: 'string' },
    'dry-run': { type: 'boolean' },
    help: { type: 'boolean' },
  },
});
const [command, arg] = positionals;

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node edge/scripts/api-key.mjs add [--name NAME] [--env production] [--dry-run]\n' +
      '       node edge/scripts/api-key.mjs revoke KEY|sha256:HEX [--env production]\n' +
      '       node edge/scripts/api-key.mjs list [--env production]\n' +
      '       node edge/scripts/api-key.mjs hash KEY\n',
  );
  process.exit(code);
}

export function keyName(keyOrHash) {
  if (keyOrHash.startsWith(PREFIX) && /^[0-9a-f]{64}$/.test(keyOrHash.slice(PREFIX.length))) return keyOrHash;
  return PREFIX + createHash('sha256').update(keyOrHash, 'utf8').digest('hex');
}

function target() {
  if (values.env) return ['--env', values.env, '--remote'];
  const persist = values['persist-to'] ?? join(process.env.OBSCURA_STATE_DIR ?? join(ROOT, '.obscura'), 'wrangler');
  return ['--env=', '--local', '--persist-to', persist];
}

function wrangler(args) {
  const full = ['kv', 'key', ...args, '--binding', BINDING, ...target()];
  if (values['dry-run']) {
    console.log(`npx wrangler ${full.map((a) => (/^[\w.:/=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`);
    return '';
  }
  const bin = join(ROOT, 'node_modules', '.bin', 'wrangler');
  const r = spawnSync(existsSync(bin) ? bin : 'npx', existsSync(bin) ? full : ['wrangler', ...full], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
  if (r.status !== 0) {
    process.stderr.write(r.stderr || r.stdout);
    process.exit(r.status ?? 1);
  }
  return r.stdout;
}

if (values.help || !command) usage(values.help ? 0 : 2);

switch (command) {
  case 'hash':
    if (!arg) usage(2);
    console.log(keyName(arg));
    break;
  case 'add': {
    const key = `obk_${randomBytes(32).toString('base64url')}`;
    const name = keyName(key);
    const meta = JSON.stringify({ name: values.name ?? 'unnamed', created: new Date().toISOString() });
    wrangler(['put', name, meta]);
    if (values['dry-run']) {
      console.log(`(dry run: nothing stored; the command above would store the hash of ${key})`);
      break;
    }
    console.log(`API key (shown once, store it now): ${key}`);
    console.log(`stored as ${name} in ${BINDING} (${values.env ? `env ${values.env}` : 'local deployment'})`);
    console.log(`apps send: Authorization: Bearer ${key}`);
    break;
  }
  case 'revoke':
    if (!arg) usage(2);
    wrangler(['delete', keyName(arg)]);
    console.log(`revoked ${keyName(arg)} (edges stop accepting it within about a minute)`);
    break;
  case 'list':
    process.stdout.write(wrangler(['list', '--prefix', PREFIX]));
    break;
  default:
    usage(2);
}
