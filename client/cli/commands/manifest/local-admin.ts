/**
 * The admin steps `obscura up` takes against its own attestation service: its sealed state directory,
 * an explanation when the service refuses that state, and the local manifest (set on first use, and
 * updated, signed by the local owner, when this checkout's reference values are no longer admitted).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { toBase64Url, toHex } from '../../../../shared/bytes.ts';
import { ObscuraError } from '../../../../shared/errors.ts';
import { GENESIS_PREV, manifestDigest, signManifestUpdate } from '../../../../shared/manifest/chain.ts';
import type { Manifest } from '../../../../shared/manifest/schema.ts';
import type { ClientPolicy } from '../../../sdk/policy.ts';
import type { OwnerKey } from '../../local-deployment/local-manifest.ts';
import { parseWeightsHeader, WEIGHTS_HEADER_BYTES } from '../../../../shared/protocol/encrypted-weights.ts';
import { AdminClient } from './admin-client.ts';
import { sealWeightsFile } from './model-keys.ts';

const fileSha256 = (path: string) => `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

function encryptedDigest(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const header = new Uint8Array(WEIGHTS_HEADER_BYTES);
    readSync(fd, header, 0, WEIGHTS_HEADER_BYTES, 0);
    return parseWeightsHeader(header).weightsDigest;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export function attestationServiceStateDir(stateDir: string): string {
  return join(stateDir, 'attestation-service');
}

/** Why the service refused to start, read from its log, with what to do; undefined if it did not. */
export function explainStateRefusal(logPath: string, stateDir: string): string | undefined {
  let refusal: { problem?: string; reason?: string; code?: string } | undefined;
  try {
    for (const line of readFileSync(logPath, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      const ev = JSON.parse(line) as { event?: string; problem?: string; reason?: string; code?: string };
      if (ev.event === 'state-refused') refusal = ev;
      else if (ev.event === 'state-opened') refusal = undefined;
    }
  } catch {
    return undefined;
  }
  if (!refusal) return undefined;
  const dir = attestationServiceStateDir(stateDir);
  const reset = `rm -rf '${dir}' '${join(stateDir, 'client', 'manifest-log.json')}'`;
  const lines = [`the attestation service refused its sealed state (${refusal.code}): ${refusal.reason}`];
  switch (refusal.problem) {
    case 'other-measurement':
      lines.push(
        'Its state (manifest chain, registered workers, held secrets, keys) is sealed to the attestation service image that wrote it, and this checkout\'s service code differs, so it cannot be opened (as on real hardware).',
        `To start over with a fresh service, new keys and a new manifest chain (clients then see a new history, so the local client's manifest log goes too): ${reset}`,
        'Or run the checkout that wrote it.',
      );
      break;
    case 'other-machine':
      lines.push(`It was sealed on another (simulated) machine: the TEE sealing root in ${join(stateDir, 'tee-sim')} changed. To start over: ${reset}`);
      break;
    case 'locked':
      lines.push('Another attestation service is using this state directory: stop it first (or use another --state-dir).');
      break;
    default:
      lines.push(`The state file is damaged; it was left as it is. Restore it from a backup, or start over: ${reset}`);
  }
  return lines.join('\n');
}

/** Every value of `reference` is in `current` (an absent reference list asks for nothing). */
const includesAll = (current: readonly string[] | undefined, reference: readonly string[] | undefined): boolean =>
  !reference || (current !== undefined && reference.every((v) => current.includes(v)));

/**
 * Whether `current` still admits everything `reference` names: per platform its roots and measurements
 * (SEV-SNP, TDX), the GPU kinds with their roots, the attestation service images, the AI code and the
 * models. What `current` admits beyond that (an admin's additions) does not matter.
 */
export function admitsReference(current: Manifest, reference: Manifest): boolean {
  const [curSnp, refSnp] = [current.platforms['sev-snp'], reference.platforms['sev-snp']];
  if (refSnp && !(curSnp && includesAll(curSnp.measurements, refSnp.measurements) && includesAll(curSnp.trustedRoots, refSnp.trustedRoots))) return false;
  const [curTdx, refTdx] = [current.platforms.tdx, reference.platforms.tdx];
  if (refTdx && !(curTdx && includesAll(curTdx.mrTd, refTdx.mrTd) && includesAll(curTdx.trustedRoots, refTdx.trustedRoots))) return false;
  for (const [kind, ref] of Object.entries(reference.gpus ?? {})) {
    const cur = (current.gpus as Record<string, typeof ref> | undefined)?.[kind];
    if (ref && !(cur && includesAll(cur.trustedRoots, ref.trustedRoots))) return false;
  }
  if (reference.attestationService && !includesAll(current.attestationService?.measurements, reference.attestationService.measurements)) return false;
  for (const a of reference.aiCode) {
    if (!current.aiCode.some((c) => c.name === a.name && c.imageDigest === a.imageDigest)) return false;
  }
  for (const m of reference.models) {
    if (!current.models.some((c) => c.weightsDigest === m.weightsDigest && m.aiCode.every((n) => c.aiCode.includes(n)))) return false;
  }
  return true;
}

/**
 * Verify the service against the admin policy (fresh nonce, attested TLS key), then make sure its
 * manifest admits this checkout: set it by trust on first use, or update it as the local owner.
 */
export async function ensureLocalManifest(input: {
  asUrl: string;
  caPem: string;
  stateDir: string;
  policy: ClientPolicy;
  owner: OwnerKey;
  manifest: Manifest;
  step: (line: string) => void;
  /** Plaintext weights files to have encrypted at rest (their keys held by the service only). */
  sealModels?: readonly string[];
}): Promise<Map<string, string>> {
  const client = new AdminClient({ asUrl: input.asUrl, caPem: input.caPem, policyPath: '', stateDir: input.stateDir });
  try {
    let attested = await client.attest(input.policy);
    const { verified } = attested;
    input.step('attestation service evidence verified against the admin policy');
    const digest = await manifestDigest(input.manifest);
    const current = verified.manifest;
    const isOwner = (m: Manifest) => m.owners.some((o) => o.id === input.owner.id && o.publicKeyJwk.x === input.owner.publicKeyJwk.x && o.publicKeyJwk.y === input.owner.publicKeyJwk.y);
    if (current && admitsReference(current, input.manifest)) {
      input.step(`manifest entry ${verified.bundle.chain.length - 1} kept (head ${toHex(verified.manifestHead).slice(0, 16)}…)`);
    } else if (current && !isOwner(current)) {
      input.step(`WARNING: the manifest does not admit this checkout's worker, and the local owner key is not an owner of it; update it with \`obscura manifest update\``);
      return new Map();
    } else {
      const prev = current ? verified.manifestHead : GENESIS_PREV;
      const signature = await signManifestUpdate(input.owner.privateKey, prev, digest);
      const res = await client.sendJson<{ seq: number; head: string }>('PUT', '/v1/manifest', { manifest: input.manifest, ownerId: input.owner.id, signature: toBase64Url(signature), prev: toHex(prev) });
      input.step(
        current
          ? `manifest updated to entry ${res.seq} (signed by ${input.owner.id}): the previous one did not admit this checkout's worker, AI code or models`
          : `manifest set (trust on first use, owner ${input.owner.id})`,
      );
      attested = await client.attest(input.policy); // the head the owner requests below are signed over
    }
    const sealed = new Map<string, string>();
    if (input.sealModels?.length && attested.verified.manifest && isOwner(attested.verified.manifest)) {
      const held = new Set((await client.getJson<{ keys: { weightsDigest: string }[] }>('/v1/models/keys')).keys.map((k) => k.weightsDigest));
      for (const path of input.sealModels) {
        const outPath = `${path}.enc`;
        const plaintextDigest = fileSha256(path);
        if (existsSync(outPath) && held.has(plaintextDigest) && encryptedDigest(outPath) === plaintextDigest) {
          sealed.set(path, outPath);
          continue;
        }
        await sealWeightsFile({ client, attested, signer: { id: input.owner.id, privateKey: input.owner.privateKey }, inPath: path, outPath });
        input.step(`model ${basename(path)} encrypted at rest (${basename(outPath)}); its key is held by the attestation service only`);
        sealed.set(path, outPath);
      }
    }
    return sealed;
  } catch (e) {
    if (e instanceof ObscuraError) throw new ObscuraError(e.code, `the admin flow against the attestation service failed: ${e.message}`);
    throw e;
  } finally {
    await client.close();
  }
}
