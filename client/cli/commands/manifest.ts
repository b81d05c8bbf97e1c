/**
 * `obscura manifest`: the manifest's life cycle, as an admin sees it. Every subcommand first verifies
 * the attestation service's evidence against the admin's own client policy (with a fresh nonce) and
 * talks to it only over the TLS key that evidence attests: nothing is sent to, or believed from, a
 * service that does not check out.
 */
import { parseArgs } from 'node:util';
import { toBase64Url, toHex } from '../../../shared/bytes.ts';
import { ObscuraError } from '../../../shared/errors.ts';
import { GENESIS_PREV, manifestDigest, signManifestUpdate } from '../../../shared/manifest/chain.ts';
import { checkpointFromJson, checkpointToJson, verifyCheckpoint, type CheckpointJson } from '../../../shared/manifest/checkpoint.ts';
import { manifestProblems, parseManifest } from '../../../shared/manifest/validate-manifest.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { ADMIN_OPTIONS, ADMIN_USAGE, AdminClient, adminSettings, loadOwnerKey, loadPolicy, ownerIdIn, readJsonFile, type AttestedService } from './manifest/admin-client.ts';
import { short, verifyHistory, type ChainEntryJson } from './manifest/chain-json.ts';
import { entryLine, manifestLines, problemLines } from './manifest/render.ts';

const usage = `obscura manifest SUBCOMMAND [options]

  show                                  the current manifest (verified against the attested chain head)
  history                               every manifest in the chain, oldest first, each checked
                                        against the digest its chain entry names
  set --file M.json --key OWNER.jwk     the first manifest (trust on first use): the service's evidence
                                        is verified against --policy before anything is sent
  update --file M.json --key OWNER.jwk  a new manifest, signed by an owner of the current one over the
                                        current (attested) head
  checkpoint [--seq N]                  the service's signed checkpoint of the head (or entry N),
                                        verified under the checkpoint key its evidence attests
  validate --file M.json                check a manifest file locally; problems come with JSON paths

Options:
  --file FILE       the manifest (JSON)
  --key FILE        the owner's ECDSA P-256 private key (JWK), e.g. STATE-DIR/owner-key.jwk
  --owner ID        the owner id to sign as (default: the owner whose public key matches --key)
  --seq N           (checkpoint) the chain entry
${ADMIN_USAGE}

Exit codes: 0 ok, 1 usage, 2 malformed input (manifest problems are listed with JSON paths),
3 signature/chain (unsigned, or not signed by that owner), 4 validity, 5 value mismatch (not an owner,
a fork of the chain, evidence that does not match the policy), 7 unavailable, 10 internal.`;

const OPTIONS = {
  ...ADMIN_OPTIONS,
  file: { type: 'string' },
  key: { type: 'string' },
  owner: { type: 'string' },
  seq: { type: 'string' },
  help: { type: 'boolean' },
} as const;

interface ManifestState {
  manifest: unknown;
  head: string;
  chain: ChainEntryJson[];
}

function readManifestFile(path: string | undefined, io: CliIO, json: boolean): { ok: true; manifest: ReturnType<typeof parseManifest> } | { ok: false; code: number } {
  if (!path) throw new ObscuraError('ERR_USAGE', 'name the manifest file with --file');
  const doc = readJsonFile(path, 'the manifest');
  const problems = manifestProblems(doc);
  if (problems.length) {
    if (json) io.out(JSON.stringify({ ok: false, file: path, problems }));
    for (const line of problemLines(path, problems)) io.err(line);
    return { ok: false, code: EXIT.MALFORMED };
  }
  return { ok: true, manifest: parseManifest(doc) };
}

async function fetchCheckpoint(client: AdminClient, attested: AttestedService, seq?: number): Promise<CheckpointJson> {
  const served = await client.getJson<CheckpointJson>(`/v1/manifest/checkpoint${seq === undefined ? '' : `?seq=${seq}`}`);
  const { checkpoint, checkpointKey } = checkpointFromJson(served);
  const attestedKey = attested.verified.core.checkpointKey;
  if (toHex(checkpointKey) !== toHex(attestedKey)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the checkpoint names another key than the one the service attests');
  await verifyCheckpoint(attestedKey, checkpoint);
  const attestedSeq = attested.verified.bundle.chain.length - 1;
  if (checkpoint.seq === attestedSeq && toHex(checkpoint.head) !== toHex(attested.verified.manifestHead)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `the checkpoint of entry ${checkpoint.seq} names another head than the attested one: the service shows two histories`);
  }
  if (seq !== undefined && checkpoint.seq !== seq) throw new ObscuraError('ERR_VALUE_MISMATCH', `asked for the checkpoint of entry ${seq}, got entry ${checkpoint.seq}`);
  return checkpointToJson(checkpoint, attestedKey);
}

async function setOrUpdate(kind: 'set' | 'update', values: Record<string, unknown>, client: AdminClient, attested: AttestedService, io: CliIO): Promise<number> {
  const json = values.json === true;
  const file = readManifestFile(values.file as string | undefined, io, json);
  if (!file.ok) return file.code;
  if (typeof values.key !== 'string') throw new ObscuraError('ERR_USAGE', 'name the owner key with --key (a JWK file)');
  const key = await loadOwnerKey(values.key);
  const { verified } = attested;
  const seqBefore = verified.bundle.chain.length - 1;
  if (kind === 'set' && verified.manifest) {
    throw new ObscuraError('ERR_USAGE', `the service already has a manifest (entry ${seqBefore}); change it with \`obscura manifest update\``);
  }
  if (kind === 'update' && !verified.manifest) throw new ObscuraError('ERR_USAGE', 'the service has no manifest yet; set the first with `obscura manifest set`');
  const next = file.manifest;
  // The first manifest's owners authorise it (trust on first use); later ones, the current owners.
  const ownerId = ownerIdIn(kind === 'set' ? next : verified.manifest!, key, values.owner as string | undefined);
  const prev = kind === 'set' ? GENESIS_PREV : verified.manifestHead;
  const digest = await manifestDigest(next);
  const signature = await signManifestUpdate(key.privateKey, prev, digest);
  const res = await client.sendJson<{ seq: number; head: string }>('PUT', '/v1/manifest', { manifest: next, ownerId, signature: toBase64Url(signature), prev: toHex(prev) });
  // Confirm with the service's signed checkpoint of the new head, under the attested key.
  const checkpoint = await fetchCheckpoint(client, attested, res.seq);
  if (checkpoint.head !== res.head) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the signed checkpoint does not name the head the service reported');
  if (json) io.out(JSON.stringify({ ok: true, seq: res.seq, head: res.head, manifestSha256: toHex(digest), authorizedBy: kind === 'set' ? `tofu:${ownerId}` : ownerId, checkpoint }));
  else {
    io.out(
      kind === 'set'
        ? `manifest set: entry ${res.seq} (trust on first use, owner ${ownerId}), head ${res.head.slice(0, 16)}…`
        : `manifest updated: entry ${res.seq}, signed by ${ownerId}, head ${res.head.slice(0, 16)}…; workers re-attest under it`,
    );
    io.out(`checkpoint of entry ${res.seq} verified under the attested checkpoint key`);
  }
  return EXIT.OK;
}

export const manifestCommand: Command = {
  name: 'manifest',
  summary: 'show, set, update and export the attestation service\'s manifest chain',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const sub = positionals[0];
    if (values.help || !sub) {
      (sub ? io.out : io.err)(usage);
      return sub ? EXIT.OK : EXIT.USAGE;
    }
    if (positionals.length > 1) throw new ObscuraError('ERR_USAGE', `unexpected argument "${positionals[1]}"`);
    const json = values.json === true;
    if (sub === 'validate') {
      const file = readManifestFile(values.file, io, json);
      if (!file.ok) return file.code;
      if (json) io.out(JSON.stringify({ ok: true, file: values.file, manifestSha256: toHex(await manifestDigest(file.manifest)) }));
      else io.out(`${values.file}: a valid manifest (sha256 ${toHex(await manifestDigest(file.manifest))})`);
      return EXIT.OK;
    }
    if (!['show', 'history', 'set', 'update', 'checkpoint'].includes(sub)) throw new ObscuraError('ERR_USAGE', `unknown subcommand "${sub}"\n\n${usage}`);
    const settings = adminSettings(values);
    const policy = loadPolicy(settings.policyPath);
    const client = new AdminClient(settings);
    try {
      const attested = await client.attest(policy);
      const { verified } = attested;
      switch (sub) {
        case 'set':
        case 'update':
          return await setOrUpdate(sub, values, client, attested, io);
        case 'show': {
          if (!verified.manifest) {
            if (json) io.out(JSON.stringify({ seq: null, head: toHex(verified.manifestHead), manifest: null }));
            else io.out('no manifest is set yet (set the first with `obscura manifest set`)');
            return EXIT.OK;
          }
          const seq = verified.bundle.chain.length - 1;
          const entry = verified.bundle.chain[seq];
          if (json) io.out(JSON.stringify({ seq, head: toHex(verified.manifestHead), setAt: entry.setAt, authorizedBy: entry.authorizedBy, manifest: verified.manifest }));
          else {
            io.out(`manifest entry ${seq} (head ${short(verified.manifestHead)}), set ${new Date(entry.setAt).toISOString()} by ${entry.authorizedBy}`);
            for (const line of manifestLines(verified.manifest)) io.out(line);
          }
          return EXIT.OK;
        }
        case 'history': {
          const served = await client.getJson<ManifestState & { manifests: unknown[] }>('/v1/manifest/history');
          const history = await verifyHistory(served, { chain: verified.bundle.chain, head: verified.manifestHead });
          if (json) {
            io.out(
              JSON.stringify({
                head: toHex(verified.manifestHead),
                entries: history.entries.map(({ entry, hash, manifest }) => ({
                  seq: entry.seq,
                  hash: toHex(hash),
                  prev: toHex(entry.prev),
                  manifestSha256: toHex(entry.manifestSha256),
                  setAt: entry.setAt,
                  authorizedBy: entry.authorizedBy,
                  signature: toBase64Url(entry.signature),
                  manifest,
                })),
              }),
            );
          } else if (history.entries.length === 0) io.out('no manifest is set yet');
          else for (const { entry, hash } of history.entries) io.out(entryLine(entry, hash));
          return EXIT.OK;
        }
        case 'checkpoint': {
          const seq = values.seq === undefined ? undefined : Number(values.seq);
          if (seq !== undefined && !Number.isSafeInteger(seq)) throw new ObscuraError('ERR_USAGE', '--seq takes an entry number');
          if (!verified.manifest) throw new ObscuraError('ERR_USAGE', 'no manifest is set, so there is no checkpoint yet');
          const checkpoint = await fetchCheckpoint(client, attested, seq);
          // With the bundle, anyone can check offline that the key is the attested service's.
          if (json) io.out(JSON.stringify({ ...checkpoint, bundle: toBase64Url(attested.bundleBytes) }));
          else io.out(`checkpoint: entry ${checkpoint.seq}, head ${checkpoint.head}, set ${new Date(checkpoint.setAt).toISOString()}; signature verified under the attested checkpoint key`);
          return EXIT.OK;
        }
      }
      return EXIT.USAGE;
    } finally {
      await client.close();
    }
  },
};
