/**
 * The attestation service assembled: its sealed state opened (or created) under the TEE's sealing key,
 * its keys and stores restored from it, and the HTTPS server's context. main.ts runs it as a process;
 * tests run it in-process the same way.
 */
import { concatBytes, fromBase64Url, randomBytes, sha256 } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { signCheckpoint } from '../shared/manifest/checkpoint.ts';
import { certificateSpki, createCertificateAuthority, exportPkcs8, generateP256KeyPair, importCertificateAuthority } from '../shared/pki/issue-certificate.ts';
import { HPKE_SEED_BYTES, HPKE_SUITES_BY_PREFERENCE, deriveHpkeKeyPair, type HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import type { TeeProvider } from '../worker-os/tee/provider.ts';
import { BundleIssuer } from './bundle-issuer.ts';
import { ManifestStore } from './manifest-store.ts';
import { ModelKeyStore } from './model-keys.ts';
import { SEALING_PURPOSE, SealedStateError, SealedStateFile } from './sealed-state.ts';
import { SecretStore } from './secret-store.ts';
import { type ServiceContext } from './server.ts';
import { StateHandoffSource } from './state-handoff.ts';
import { STATE_FORMAT, StateWriter, decodeServiceState, encodeServiceState, type ServiceKeyMaterial, type ServiceStateSnapshot } from './service-state.ts';
import { WorkerRegistry } from './worker-registry.ts';

export const MESH_CA_LIFETIME_MS = 30 * 24 * 3600_000;
/** A mesh CA closer than this to its end is replaced at start (workers then re-register). */
const MESH_CA_RENEW_BEFORE_MS = 7 * 24 * 3600_000;

export interface OpenedService {
  ctx: ServiceContext;
  state: StateWriter;
  /** Why the state was (re)made, for the start log: 'created', 'restored', 'restored-new-mesh-ca', 'handed-over'. */
  origin: 'created' | 'restored' | 'restored-new-mesh-ca' | 'handed-over';
  close(): Promise<void>;
}

async function freshKeys(now: number): Promise<ServiceKeyMaterial> {
  const ca = await createCertificateAuthority({ commonName: 'Obscura mesh CA', notBefore: new Date(now - 60_000), notAfter: new Date(now + MESH_CA_LIFETIME_MS) });
  const checkpoint = await generateP256KeyPair(true);
  return {
    hpkeSeeds: HPKE_SUITES_BY_PREFERENCE.map((suite) => ({ suite, seed: randomBytes(HPKE_SEED_BYTES) })),
    meshCa: { certificateDer: ca.certificateDer, privateKeyPkcs8: await exportPkcs8(ca.privateKey) },
    checkpointKeyPkcs8: await exportPkcs8(checkpoint.privateKey),
  };
}

/** The checkpoint signing key (non-extractable) and its public point (65 bytes) from its PKCS#8. */
async function importCheckpointKey(pkcs8: Uint8Array): Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const extractable = await crypto.subtle.importKey('pkcs8', pkcs8.slice().buffer as ArrayBuffer, alg, true, ['sign']);
  const jwk = await crypto.subtle.exportKey('jwk', extractable);
  const publicKey = concatBytes(new Uint8Array([4]), fromBase64Url(jwk.x!), fromBase64Url(jwk.y!));
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8.slice().buffer as ArrayBuffer, alg, false, ['sign']);
  return { privateKey, publicKey };
}

export async function openAttestationService(input: {
  tee: TeeProvider;
  measurement: Uint8Array;
  stateDir: string;
  tlsCertPem: string;
  log: (event: Record<string, unknown>) => void;
  now?: () => number;
  /**
   * A fresh service takes its state from another attestation service (state-handoff.ts
   * receiveStateHandoff); called under the directory's lock, and only when it holds no state yet, so a
   * service with a state never asks another to hand over (which would freeze that one for nothing).
   */
  adopt?: () => Promise<ServiceStateSnapshot>;
}): Promise<OpenedService> {
  const now = input.now ?? Date.now;
  const file = await SealedStateFile.create(input.stateDir, await input.tee.sealingKey(SEALING_PURPOSE), input.measurement);
  const unlock = await file.lock();
  try {
    const plaintext = await file.read();
    let origin: OpenedService['origin'] = plaintext ? 'restored' : 'created';
    let snap: ServiceStateSnapshot;
    if (plaintext && input.adopt) {
      throw new ObscuraError('ERR_USAGE', `${file.path} holds a state already: a handed-over state goes only to a service with an empty state directory`);
    }
    if (plaintext) snap = decodeServiceState(plaintext, file.path);
    else if (input.adopt) {
      snap = await input.adopt();
      origin = 'handed-over';
    } else {
      snap = {
        format: STATE_FORMAT,
        keys: await freshKeys(now()),
        manifests: { entries: [], manifests: [], checkpoints: [] },
        workers: { workers: [], revokedIds: [], revokedChips: [] },
        secrets: [],
        modelKeys: [],
      };
    }
    // A suite added since the state was made gets its key now (the core then offers it too).
    for (const suite of HPKE_SUITES_BY_PREFERENCE) {
      if (!snap.keys.hpkeSeeds.some((s) => s.suite === suite)) snap.keys.hpkeSeeds.push({ suite, seed: randomBytes(HPKE_SEED_BYTES) });
    }
    let meshCa = await importCertificateAuthority(snap.keys.meshCa);
    if (meshCa.notAfter.getTime() - now() < MESH_CA_RENEW_BEFORE_MS) {
      const fresh = await freshKeys(now());
      snap.keys.meshCa = fresh.meshCa;
      snap.workers.workers = []; // their certificates chain to the old CA: they register again
      meshCa = await importCertificateAuthority(snap.keys.meshCa);
      if (origin === 'restored') origin = 'restored-new-mesh-ca';
    }
    const keys = snap.keys;
    const checkpointKey = await importCheckpointKey(keys.checkpointKeyPkcs8);
    const signer = (c: Parameters<typeof signCheckpoint>[1]) => signCheckpoint(checkpointKey.privateKey, c);
    let manifests: ManifestStore;
    try {
      manifests = await ManifestStore.restore(snap.manifests, now, signer);
    } catch (cause) {
      throw new SealedStateError('corrupt', file.path, `${file.path} opened, but its manifest chain does not verify (${(cause as Error).message})`, { cause });
    }
    const hpke: HpkeKeyPair[] = [];
    for (const suite of HPKE_SUITES_BY_PREFERENCE) hpke.push(await deriveHpkeKeyPair(suite, keys.hpkeSeeds.find((s) => s.suite === suite)!.seed));
    const secrets = SecretStore.restore(snap.secrets, now);
    const models = ModelKeyStore.restore(snap.modelKeys);
    const workers = new WorkerRegistry(manifests, meshCa, now);
    workers.restore(snap.workers);
    const issuer = new BundleIssuer({
      tee: input.tee,
      manifests,
      hpke,
      tlsKeySha256: await sha256(certificateSpki(input.tlsCertPem)),
      meshCaSha256: await sha256(meshCa.certificateDer),
      checkpointKey: checkpointKey.publicKey,
      now,
    });
    let handoff: StateHandoffSource | undefined;
    const snapshot = (): ServiceStateSnapshot => ({
      format: STATE_FORMAT,
      keys,
      manifests: manifests.snapshot(),
      workers: workers.snapshot(),
      secrets: secrets.snapshot(),
      modelKeys: models.snapshot(),
      ...(handoff?.record ? { handedOff: handoff.record } : {}),
    });
    const state = new StateWriter(file, snapshot);
    handoff = new StateHandoffSource({ record: snap.handedOff, snapshot, persist: () => state.persist(), now, log: input.log });
    manifests.setDurability((pending, commit) => state.persistThenCommit((s) => ({ ...s, manifests: pending }), commit));
    // Durable before serving: a fresh service's keys, or a restored one's upgrades, are on disk first.
    await file.write(encodeServiceState(snapshot()));
    const ctx: ServiceContext = {
      issuer,
      manifests,
      secrets,
      workers,
      models,
      hpke,
      log: input.log,
      now,
      meshCaPem: meshCa.certificatePem,
      checkpointKey: checkpointKey.publicKey,
      persist: () => state.persist(),
      handoff,
    };
    return { ctx, state, origin, close: unlock };
  } catch (e) {
    await unlock();
    throw e;
  }
}

export function describeStateError(e: unknown): { code: string; problem?: string; message: string } {
  if (e instanceof SealedStateError) return { code: e.code, problem: e.problem, message: e.message };
  if (e instanceof ObscuraError) return { code: e.code, message: e.message };
  return { code: 'error', message: String((e as Error)?.message ?? e) };
}
