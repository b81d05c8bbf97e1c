/**
 * Worker registration: one-time challenges, evidence (SEV-SNP or TDX) checked against the current
 * manifest's reference values for its platform (measurement, roots, policy) and bound to the challenge
 * and the worker's keys, then a short-lived mesh certificate.
 * A manifest change makes every worker re-attest: admissions are tied to the head they were made under.
 * Owners can revoke a worker: its identity gets nothing more, and (by default) neither does any worker
 * on the same machine (chip), since a fresh identity is one registration away.
 * GPU evidence, when the manifest names reference values for the GPU's kind, must carry the nonce
 * derived from the same challenge and keys (so CPU and GPU evidence of different registrations cannot
 * be combined) and match those values; a manifest that requires a GPU admits no worker without one.
 */
import { createHash } from 'node:crypto';
import { equalBytes, randomBytes, sha256, toBase64Url, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import type { Evidence } from '../shared/attestation/evidence.ts';
import { verifyEvidenceAgainstReference, verifyGpuEvidenceAgainstReference, type EvidenceFacts, type GpuEvidenceFacts } from '../shared/attestation/verify-evidence.ts';
import { GPU_KINDS, type GpuEvidence } from '../shared/attestation/gpu-evidence.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { issueLeafCertificate } from '../shared/pki/issue-certificate.ts';
import { checkHpkePublicKey, isHpkeSuiteName } from '../shared/protocol/hpke-suites.ts';
import { WORKER_REGISTRATION_NONCE_BYTES, workerRegistrationGpuNonce, workerRegistrationReportData } from '../shared/protocol/worker-registration.ts';
import type { ManifestStore } from './manifest-store.ts';

const CHALLENGE_TTL_MS = 60_000;
const MAX_OPEN_CHALLENGES = 10_000;
/** Expired admissions are kept this long (for `GET /v1/workers`), then dropped. */
const KEEP_EXPIRED_MS = 24 * 3600_000;

export interface RegisteredWorker {
  workerId: string;
  certFingerprint: string; // sha256 of the certificate DER, hex
  hpkePublicKey: Uint8Array;
  hpkeSuite: string;
  admittedUnder: Uint8Array; // manifest head at admission
  /** The CPU TEE the evidence came from (absent in states written before TDX workers). */
  platform?: Evidence['platform'];
  measurement: string; // hex: SEV-SNP MEASUREMENT or TDX MRTD
  chipId: string; // hex: SEV-SNP CHIP_ID, TDX PCK PPID; all zeros when the platform masks it
  endpoint: string;
  admittedAt: number;
  certExpiresAt: number;
  revoked: boolean;
  /** The GPUs whose evidence matched the manifest's GPU reference values (absent: none checked). */
  gpus?: RegisteredGpu[];
}

/** What the service verified about one of a worker's GPUs (driver, VBIOS, a digest of its measurements, root). */
export type RegisteredGpu = GpuEvidenceFacts;

export interface RegistrationRequest {
  nonce: Uint8Array;
  evidence: Evidence;
  hpkePublicKey: Uint8Array;
  hpkeSuite: string;
  certSpki: Uint8Array;
  endpoint: string;
  /** The worker's GPUs' evidence, each made with workerRegistrationGpuNonce of this registration. */
  gpuEvidence?: GpuEvidence[];
}

export interface WorkerRegistrySnapshot {
  workers: RegisteredWorker[];
  revokedIds: string[];
  revokedChips: string[];
}

export interface Revocation {
  workerId: string;
  registrations: number; // certificates of this worker now revoked
  machine?: string; // chip id banned, when asked and known
}

export class WorkerRegistry {
  private readonly challenges = new Map<string, number>();
  private readonly workers = new Map<string, RegisteredWorker>(); // by cert fingerprint
  private readonly revokedIds = new Set<string>();
  private readonly revokedChips = new Set<string>();

  constructor(
    private readonly manifests: ManifestStore,
    private readonly meshCa: { certificatePem: string; privateKey: CryptoKey },
    private readonly now: () => number = Date.now,
  ) {}

  restore(snapshot: WorkerRegistrySnapshot): void {
    for (const w of snapshot.workers) this.workers.set(w.certFingerprint, w);
    for (const id of snapshot.revokedIds) this.revokedIds.add(id);
    for (const chip of snapshot.revokedChips) this.revokedChips.add(chip);
  }

  snapshot(): WorkerRegistrySnapshot {
    this.prune();
    return { workers: [...this.workers.values()], revokedIds: [...this.revokedIds], revokedChips: [...this.revokedChips] };
  }

  challenge(): { nonce: string; expiresAt: number } {
    const now = this.now();
    for (const [n, exp] of this.challenges) if (exp <= now) this.challenges.delete(n);
    if (this.challenges.size >= MAX_OPEN_CHALLENGES) throw new ObscuraError('ERR_UPSTREAM', 'too many open registration challenges; try again later');
    const nonce = toBase64Url(randomBytes(WORKER_REGISTRATION_NONCE_BYTES));
    this.challenges.set(nonce, now + CHALLENGE_TTL_MS);
    return { nonce, expiresAt: now + CHALLENGE_TTL_MS };
  }

  async register(req: RegistrationRequest): Promise<{ worker: RegisteredWorker; certificatePem: string; facts: EvidenceFacts }> {
    const manifest = this.manifests.current;
    if (!manifest) throw new ObscuraError('ERR_NO_WORKER', 'no manifest is set: workers cannot be admitted yet');
    // One-time nonce: consumed whether or not the evidence passes, so evidence cannot be replayed.
    const key = toBase64Url(req.nonce);
    const exp = this.challenges.get(key);
    this.challenges.delete(key);
    if (exp === undefined || exp <= this.now()) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the registration nonce is unknown, used or expired: ask for a new challenge');
    }
    if (!isHpkeSuiteName(req.hpkeSuite)) throw new ObscuraError('ERR_UNSUPPORTED_VERSION', `HPKE suite ${req.hpkeSuite} is not supported`);
    await checkHpkePublicKey(req.hpkeSuite, req.hpkePublicKey);
    const head = this.manifests.head;
    const facts = await verifyEvidenceAgainstReference(req.evidence, manifest.platforms, new Date(this.now()));
    const binding = { nonce: req.nonce, hpkePublicKey: req.hpkePublicKey, hpkeSuite: req.hpkeSuite, certKeySha256: await sha256(req.certSpki) };
    const expected = await workerRegistrationReportData(binding);
    if (!equalBytes(facts.reportData, expected)) {
      throw new ObscuraError('ERR_VALUE_MISMATCH', 'the evidence does not bind this challenge and these keys');
    }
    const gpus = await verifyGpus(manifest, req.gpuEvidence ?? [], await workerRegistrationGpuNonce(binding), new Date(this.now()));
    const chipId = toHex(facts.chipId);
    if (this.revokedChips.has(chipId)) throw new ObscuraError('ERR_REVOKED', 'an owner revoked the workers of this machine');
    const workerId = toHex(await sha256(req.hpkePublicKey)).slice(0, 16);
    if (this.revokedIds.has(workerId)) throw new ObscuraError('ERR_REVOKED', 'an owner revoked this worker');
    if (!equalBytes(head, this.manifests.head)) {
      throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'the manifest changed while this worker was being admitted: register again');
    }
    const now = this.now();
    const certExpiresAt = now + manifest.limits.workerCertLifetimeMs;
    const cert = await issueLeafCertificate({
      ca: this.meshCa,
      subjectPublicKeySpki: req.certSpki,
      commonName: `obscura-worker-${workerId}`,
      usage: 'client',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(certExpiresAt),
    });
    const worker: RegisteredWorker = {
      workerId,
      certFingerprint: createHash('sha256').update(cert.certificateDer).digest('hex'),
      hpkePublicKey: req.hpkePublicKey,
      hpkeSuite: req.hpkeSuite,
      admittedUnder: head,
      platform: facts.platform,
      measurement: toHex(facts.measurement),
      chipId,
      endpoint: req.endpoint,
      admittedAt: now,
      certExpiresAt,
      revoked: false,
      ...(manifest.gpus ? { gpus } : {}),
    };
    this.prune();
    this.workers.set(worker.certFingerprint, worker);
    return { worker, certificatePem: cert.certificatePem, facts };
  }

  /** Undo an admission whose state could not be made durable. */
  forget(worker: RegisteredWorker): void {
    this.workers.delete(worker.certFingerprint);
  }

  /** The worker behind a presented client certificate, if it is certified now, under this manifest. */
  certified(certDer: Uint8Array): RegisteredWorker {
    const fp = createHash('sha256').update(certDer).digest('hex');
    const w = this.workers.get(fp);
    if (!w) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this certificate does not belong to a registered worker');
    if (w.revoked || this.revokedIds.has(w.workerId) || this.revokedChips.has(w.chipId)) throw new ObscuraError('ERR_REVOKED', 'an owner revoked this worker');
    if (w.certExpiresAt <= this.now()) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this worker certificate expired: register again');
    if (!equalBytes(w.admittedUnder, this.manifests.head)) {
      throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'the manifest changed since this worker was admitted: register again');
    }
    return w;
  }

  /** Revoke a worker identity and, unless `identityOnly`, the machine (chip) it ran on. */
  revoke(workerId: string, opts: { identityOnly?: boolean } = {}): Revocation {
    const matches = [...this.workers.values()].filter((w) => w.workerId === workerId);
    if (matches.length === 0 && !this.revokedIds.has(workerId)) throw new ObscuraError('ERR_USAGE', `no worker ${workerId} is registered`);
    for (const w of matches) w.revoked = true;
    this.revokedIds.add(workerId);
    const out: Revocation = { workerId, registrations: matches.length };
    const chip = matches.find((w) => !isAllZeroHex(w.chipId))?.chipId;
    if (!opts.identityOnly && chip) {
      this.revokedChips.add(chip);
      for (const w of this.workers.values()) if (w.chipId === chip) w.revoked = true;
      out.machine = chip;
    }
    return out;
  }

  list(): RegisteredWorker[] {
    return [...this.workers.values()];
  }

  private prune(): void {
    const cutoff = this.now() - KEEP_EXPIRED_MS;
    for (const [fp, w] of this.workers) if (w.certExpiresAt < cutoff) this.workers.delete(fp);
  }
}

/**
 * Each GPU evidence whose kind the manifest has reference values for: verified against them with the
 * registration's GPU nonce. Evidence of a kind the manifest does not name is not part of admission, so
 * it is neither checked nor recorded. A kind marked `required` needs at least one verified GPU.
 */
async function verifyGpus(manifest: Manifest, evidence: readonly GpuEvidence[], gpuNonce: Uint8Array, at: Date): Promise<RegisteredGpu[]> {
  const references = manifest.gpus ?? {};
  const verified: RegisteredGpu[] = [];
  const leaves = new Set<string>();
  for (const e of evidence) {
    if (!references[e.kind]) continue;
    // One GPU counted twice would overstate what the worker has.
    const leaf = toHex(await sha256(e.certChain[0]));
    if (leaves.has(leaf)) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the same GPU\'s evidence is in the registration twice');
    leaves.add(leaf);
    verified.push(await verifyGpuEvidenceAgainstReference(e, references, at, gpuNonce));
  }
  for (const kind of GPU_KINDS) {
    if (references[kind]?.required && !verified.some((g) => g.kind === kind)) {
      throw new ObscuraError('ERR_POLICY_VIOLATION', `the manifest requires ${kind} GPU evidence, and the registration has none`);
    }
  }
  return verified;
}

function isAllZeroHex(hex: string): boolean {
  return /^0*$/.test(hex);
}
