/**
 * `obscura worker`: the workers the attestation service admitted, and revoking one. A revocation is an
 * owner-signed request (ECDSA P-256 over CBOR {purpose, workerId, identityOnly, timestamp,
 * manifestHead}), sent only after the service's evidence checked out against the admin's policy.
 */
import { parseArgs } from 'node:util';
import { toBase64Url, toHex } from '../../../shared/bytes.ts';
import { ObscuraError } from '../../../shared/errors.ts';
import { PURPOSE_WORKER_REVOKE, signOwnerRequest } from '../../../shared/manifest/owner-request.ts';
import { callAgent } from '../../../backend/agent-api.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { ADMIN_OPTIONS, ADMIN_USAGE, AdminClient, adminSettings, loadOwnerKey, loadPolicy, ownerIdIn } from './manifest/admin-client.ts';

const usage = `obscura worker SUBCOMMAND [options]

  list                               the workers the service admitted (current: certified under the
                                     current manifest, not revoked, certificate valid)
  revoke --id WORKER_ID --key FILE   revoke a worker, signed by an owner of the current manifest: it
                                     gets no more secrets or model keys, and no worker on the same
                                     machine (chip) is admitted again, since a revoked worker could
                                     otherwise register again under a fresh identity
    --identity-only                  revoke only this worker identity, not its machine
    --owner ID                       the owner id to sign as (default: the owner whose key matches)

  The AI code on one worker, through its API (owner-signed: ECDSA P-256 over CBOR {purpose:
  'obscura/v1 agent request', method, path, timestamp, nonce, manifestHead}):
  list --worker URL --key FILE       the worker's AI code: state, restarts, image digest, allowed
  inspect NAME --worker URL --key FILE
  start NAME --worker URL --key FILE only AI code the current manifest allows (name and image digest)
  stop NAME --worker URL --key FILE  stops it until the next start

Options:
${ADMIN_USAGE}

Note: on the local simulated TEE every worker runs on one simulated chip, so revoking a machine there
keeps every local worker out until the state is reset.`;

interface WorkerRow {
  workerId: string;
  endpoint: string;
  platform?: string;
  measurement: string;
  admittedAt: number;
  certExpiresAt: number;
  revoked: boolean;
  current: boolean;
  /** GPUs whose evidence the service verified against the manifest (absent from older services). */
  gpus?: { kind: string; driverVersion?: string; vbiosVersion?: string; measurementCount: number }[];
}

/** "  gpu nvidia-h100 driver 550.90.07 vbios 96.00.9F.00.01" per verified GPU, or nothing. */
const gpuSummary = (w: WorkerRow) =>
  (w.gpus ?? []).map((g) => `  gpu ${g.kind} driver ${g.driverVersion ?? '?'} vbios ${g.vbiosVersion ?? '?'} (${g.measurementCount} measurements)`).join('');

export const workerCommand: Command = {
  name: 'worker',
  summary: 'list the admitted workers, or revoke one; list, inspect, start, stop a worker\'s AI code (owner-signed)',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...ADMIN_OPTIONS, id: { type: 'string' }, key: { type: 'string' }, worker: { type: 'string' }, owner: { type: 'string' }, 'identity-only': { type: 'boolean' }, help: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const sub = positionals[0];
    if (values.help || !sub) {
      (sub ? io.out : io.err)(usage);
      return sub ? EXIT.OK : EXIT.USAGE;
    }
    if (!['list', 'revoke', 'inspect', 'start', 'stop'].includes(sub)) throw new ObscuraError('ERR_USAGE', `unknown subcommand "${sub}"\n\n${usage}`);
    const settings = adminSettings(values);
    const client = new AdminClient(settings);
    try {
      const { verified } = await client.attest(loadPolicy(settings.policyPath));
      if (sub === 'inspect' || sub === 'start' || sub === 'stop' || (sub === 'list' && values.worker)) {
        const name = positionals[1];
        if (!values.worker) throw new ObscuraError('ERR_USAGE', 'name the worker with --worker URL (its agent, e.g. https://127.0.0.1:9443)');
        if (sub !== 'list' && !name) throw new ObscuraError('ERR_USAGE', `name the AI code: obscura worker ${sub} NAME --worker URL --key FILE`);
        if (!values.key) throw new ObscuraError('ERR_USAGE', 'name the owner key with --key (a JWK file)');
        if (!verified.manifest) throw new ObscuraError('ERR_USAGE', 'the service has no manifest, so there is no owner');
        const key = await loadOwnerKey(values.key);
        const path = sub === 'list' ? '/agent/v1/ai-code' : `/agent/v1/ai-code/${encodeURIComponent(name!)}${sub === 'inspect' ? '' : `/${sub}`}`;
        const out = await callAgent({ workerUrl: values.worker, caPem: settings.caPem, privateKey: key.privateKey, ownerId: ownerIdIn(verified.manifest, key, values.owner), manifestHead: verified.manifestHead, method: sub === 'list' || sub === 'inspect' ? 'GET' : 'POST', path });
        const rows = (Array.isArray(out.aiCode) ? out.aiCode : [out.aiCode]) as { name: string; state: string; restarts: number; imageDigest: string; allowed: boolean }[];
        if (values.json) io.out(JSON.stringify(out));
        else for (const a of rows) io.out(`${a.name}  ${a.state}  restarts ${a.restarts}  image ${a.imageDigest.slice(0, 19)}…  ${a.allowed ? 'allowed' : 'NOT ALLOWED by the manifest'}`);
        return EXIT.OK;
      }
      if (sub === 'list') {
        const { workers } = await client.getJson<{ workers: WorkerRow[] }>('/v1/workers');
        if (values.json) io.out(JSON.stringify({ workers }));
        else if (workers.length === 0) io.out('no worker is registered');
        else for (const w of workers) io.out(`${w.workerId}  ${w.current ? 'current' : w.revoked ? 'REVOKED' : 'stale'}  ${w.endpoint}  ${w.platform ?? 'sev-snp'} measurement ${w.measurement.slice(0, 16)}…  certificate until ${new Date(w.certExpiresAt).toISOString()}${gpuSummary(w)}`);
        return EXIT.OK;
      }
      if (!values.id || !/^[0-9a-f]{16}$/.test(values.id)) throw new ObscuraError('ERR_USAGE', 'name the worker with --id (16 hex digits, as `obscura worker list` shows)');
      if (!values.key) throw new ObscuraError('ERR_USAGE', 'name the owner key with --key (a JWK file)');
      if (!verified.manifest) throw new ObscuraError('ERR_USAGE', 'the service has no manifest, so no owner can revoke anything');
      const key = await loadOwnerKey(values.key);
      const ownerId = ownerIdIn(verified.manifest, key, values.owner);
      const fields = { workerId: values.id, identityOnly: values['identity-only'] === true, timestamp: Date.now(), manifestHead: verified.manifestHead };
      const signature = await signOwnerRequest(key.privateKey, PURPOSE_WORKER_REVOKE, fields);
      const res = await client.sendJson<{ workerId: string; registrations: number; machineRevoked: boolean }>('POST', '/v1/workers/revoke', {
        ...fields,
        manifestHead: toHex(fields.manifestHead),
        ownerId,
        signature: toBase64Url(signature),
      });
      if (values.json) io.out(JSON.stringify({ ok: true, ...res }));
      else io.out(`worker ${res.workerId} revoked (${res.registrations} certificate(s))${res.machineRevoked ? ', and its machine: no worker on it is admitted again' : ''}`);
      return EXIT.OK;
    } finally {
      await client.close();
    }
  },
};
