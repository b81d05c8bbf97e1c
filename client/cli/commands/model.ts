/**
 * `obscura model`: model weights encrypted at rest. `seal` encrypts a weights file (AES-256-GCM in
 * chunks) under a fresh key and hands that key only to the attested attestation service, which
 * releases it only to workers whose manifest lets their AI code load those weights.
 */
import { parseArgs } from 'node:util';
import { ObscuraError } from '../../../shared/errors.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { ADMIN_OPTIONS, ADMIN_USAGE, AdminClient, adminSettings, loadOwnerKey, loadPolicy, ownerIdIn } from './manifest/admin-client.ts';
import { sealWeightsFile } from './manifest/model-keys.ts';

const usage = `obscura model SUBCOMMAND [options]

  seal --in WEIGHTS --out WEIGHTS.enc --key OWNER.jwk
        encrypt the weights under a fresh key and give the key to the attestation service (sealed to
        its attested key, signed by an owner of the current manifest, which must name the weights'
        digest); no copy of the key is kept. Give WEIGHTS.enc to the workers (--model-file).
  keys  the weights digests the service holds keys for

Options:
  --owner ID        the owner id to sign as (default: the owner whose key matches --key)
${ADMIN_USAGE}`;

export const modelCommand: Command = {
  name: 'model',
  summary: 'encrypt model weights at rest and hand their key to the attestation service',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...ADMIN_OPTIONS, in: { type: 'string' }, out: { type: 'string' }, key: { type: 'string' }, owner: { type: 'string' }, help: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const sub = positionals[0];
    if (values.help || !sub) {
      (sub ? io.out : io.err)(usage);
      return sub ? EXIT.OK : EXIT.USAGE;
    }
    if (sub !== 'seal' && sub !== 'keys') throw new ObscuraError('ERR_USAGE', `unknown subcommand "${sub}"\n\n${usage}`);
    const settings = adminSettings(values);
    const client = new AdminClient(settings);
    try {
      const attested = await client.attest(loadPolicy(settings.policyPath));
      if (sub === 'keys') {
        const { keys } = await client.getJson<{ keys: { weightsDigest: string; createdAt: number }[] }>('/v1/models/keys');
        if (values.json) io.out(JSON.stringify({ keys }));
        else for (const k of keys) io.out(`${k.weightsDigest}  since ${new Date(k.createdAt).toISOString()}`);
        return EXIT.OK;
      }
      if (!values.in || !values.out || !values.key) throw new ObscuraError('ERR_USAGE', 'seal needs --in, --out and --key');
      if (!attested.verified.manifest) throw new ObscuraError('ERR_USAGE', 'the service has no manifest yet');
      const key = await loadOwnerKey(values.key);
      const signer = { id: ownerIdIn(attested.verified.manifest, key, values.owner), privateKey: key.privateKey };
      const r = await sealWeightsFile({ client, attested, signer, inPath: values.in, outPath: values.out });
      if (values.json) io.out(JSON.stringify({ ok: true, ...r, out: values.out }));
      else io.out(`${values.out}: ${r.bytes} bytes, weights ${r.weightsDigest}; the key is held by the attestation service only`);
      return EXIT.OK;
    } finally {
      await client.close();
    }
  },
};
