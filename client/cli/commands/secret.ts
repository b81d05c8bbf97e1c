/**
 * `obscura secret rotate --endpoint URL`: verify the endpoint, exchange a new inference secret (HPKE-
 * sealed to the attested service key), and check that a worker can use it (one sealed GET /v1/models).
 * Shows the secret's id and expiry; the secret itself never leaves this process, which ends with it.
 */
import { parseArgs } from 'node:util';
import { toHex } from '../../../shared/bytes.ts';
import { ObscuraError } from '../../../shared/errors.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { duration, ENDPOINT_OPTIONS, ENDPOINT_USAGE, openEndpoint, responseError } from './endpoint/client.ts';

const usage = `obscura secret rotate --endpoint URL [--json]

Verifies the endpoint's attestation against your client policy, exchanges a fresh inference secret with
the attestation service (sealed with HPKE to the key its evidence attests; released only to workers the
current manifest admits), and sends one sealed request (GET /v1/models) to check a worker can use it.
Prints the secret's id and expiry. Uses the same defaults as obscura proxy (policy, CA and manifest log
under the state directory).

A running proxy (obscura proxy, obscura up) keeps its own secret and rotates it by itself before it
expires (the policy's secretLifetimeMs, capped by the manifest); restart it to rotate at once.

${ENDPOINT_USAGE}`;

export const secretCommand: Command = {
  name: 'secret',
  summary: 'rotate: exchange a new inference secret with an endpoint and check a worker can use it',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseArgs({ args: argv, options: { ...ENDPOINT_OPTIONS, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    if (values.help) {
      io.out(usage);
      return EXIT.OK;
    }
    if (positionals[0] !== 'rotate' || positionals.length > 1) throw new ObscuraError('ERR_USAGE', `${positionals[0] ? `unknown subcommand "${positionals.join(' ')}"` : 'name a subcommand'}\n\n${usage}`);
    const client = openEndpoint(values, io);
    const session = client.obscuraFetch.session;
    try {
      io.err(`[obscura] verifying the attestation of ${client.endpoint}`);
      const verified = await session.verified();
      io.err('[obscura] exchanging a new inference secret (HPKE-sealed to the attested service key)');
      const started = Date.now();
      session.invalidateSecret();
      const first = await session.secret();
      io.err('[obscura] checking that a worker can use it (one sealed GET /v1/models)');
      const res = await client.obscuraFetch(`${client.endpoint}/v1/models`);
      if (!res.ok) throw await responseError(res, 'the check request failed');
      const models = ((await res.json()) as { data?: { id: string }[] }).data?.map((m) => m.id) ?? [];
      // The SDK exchanges once more by itself if the worker did not get the first secret.
      const secret = await session.secret();
      const out = {
        ok: true,
        endpoint: client.endpoint,
        secretId: toHex(secret.sid),
        expiresAt: secret.expiresAt,
        exchangedAt: started,
        manifestHead: toHex(verified.manifestHead),
        checked: { request: 'GET /v1/models', models },
        reexchanged: toHex(first.sid) !== toHex(secret.sid),
      };
      if (values.json) io.out(JSON.stringify(out));
      else {
        io.out(`new inference secret ${out.secretId}`);
        io.out(`  expires   ${new Date(secret.expiresAt).toISOString()} (in ${duration(secret.expiresAt - Date.now())})`);
        io.out(`  bound to  manifest head ${out.manifestHead.slice(0, 16)}… (released only to workers it admits)`);
        io.out(`  checked   a worker opened a request sealed with it (GET /v1/models: ${models.join(', ') || 'no model'})`);
      }
      return EXIT.OK;
    } finally {
      await client.close();
    }
  },
};
