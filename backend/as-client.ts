/**
 * The worker's side of the attestation service API: registration (challenge, CPU evidence and the
 * GPUs' evidence, certificate) and secret release over mutual TLS with the certificate the service issued.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Agent, request } from 'undici';
import { sha256, toHex, fromBase64Url } from '../shared/bytes.ts';
import { encodeDeterministic } from '../shared/cbor.ts';
import { ObscuraError } from '../shared/errors.ts';
import { encodeEvidence } from '../shared/attestation/evidence.ts';
import { encodeGpuEvidence } from '../shared/attestation/gpu-evidence.ts';
import { generateHpkeKeyPair, type HpkeKeyPair } from '../shared/protocol/hpke-suites.ts';
import { parseSealedSecret, type SealedSecret } from '../shared/protocol/inference-secret.ts';
import { parseSealedModelKey, type SealedModelKey } from '../shared/protocol/model-key.ts';
import { fromWireError } from '../shared/protocol/wire-error.ts';
import { workerRegistrationGpuNonce, workerRegistrationReportData } from '../shared/protocol/worker-registration.ts';
import type { GpuEvidenceProvider, TeeProvider } from '../worker-os/tee/provider.ts';

export interface WorkerIdentity {
  hpke: HpkeKeyPair; // secrets are released sealed to this key, which the evidence binds
  certKey: KeyObject; // private key of the mesh certificate (mTLS to the service)
  certPem: string;
  meshCaPem: string;
  certExpiresAt: number;
  manifestHead: Uint8Array;
  workerId: string;
}

async function readJson(res: Awaited<ReturnType<typeof request>>): Promise<unknown> {
  const text = await res.body.text();
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class AttestationServiceClient {
  private mtls?: Agent;

  constructor(
    private readonly baseUrl: string,
    private readonly tls: { ca: string },
  ) {}

  private readonly plainAgent = () => new Agent({ connect: { ca: this.tls.ca } });

  /**
   * Register: fresh keys, a service nonce, evidence binding both, and a certificate in return. Each of
   * `gpus` attests with the GPU nonce derived from the same nonce and keys.
   */
  async register(tee: TeeProvider, endpoint: string, gpus: readonly GpuEvidenceProvider[] = []): Promise<WorkerIdentity> {
    const agent = this.plainAgent();
    try {
      const ch = await request(`${this.baseUrl}/v1/workers/challenge`, { method: 'POST', dispatcher: agent });
      const chBody = (await readJson(ch)) as { nonce?: string };
      if (ch.statusCode !== 200 || typeof chBody?.nonce !== 'string') throw fromWireError(ch.statusCode, chBody);
      const nonce = fromBase64Url(chBody.nonce);

      const hpke = await generateHpkeKeyPair();
      const { privateKey: certKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const certSpki = new Uint8Array(createPublicKey(certKey).export({ type: 'spki', format: 'der' }));
      const binding = { nonce, hpkePublicKey: hpke.publicKey, hpkeSuite: hpke.suite, certKeySha256: await sha256(certSpki) };
      const evidence = await tee.attest(await workerRegistrationReportData(binding));
      const gpuNonce = await workerRegistrationGpuNonce(binding);
      const gpuEvidence = await Promise.all(gpus.map((gpu) => gpu.attest(gpuNonce)));

      const body = encodeDeterministic({
        nonce,
        evidence: encodeEvidence(evidence),
        hpkePublicKey: hpke.publicKey,
        hpkeSuite: hpke.suite,
        certSpki,
        endpoint,
        ...(gpuEvidence.length > 0 ? { gpuEvidence: gpuEvidence.map(encodeGpuEvidence) } : {}),
      });
      const res = await request(`${this.baseUrl}/v1/workers/register`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/cbor' },
        dispatcher: agent,
      });
      const out = (await readJson(res)) as { workerId: string; certificatePem: string; meshCaPem: string; expiresAt: number; manifestHead: string };
      if (res.statusCode !== 200) throw fromWireError(res.statusCode, out);
      await this.mtls?.close();
      this.mtls = new Agent({
        connect: { ca: this.tls.ca, cert: out.certificatePem, key: certKey.export({ type: 'pkcs8', format: 'pem' }) as string },
      });
      return {
        hpke,
        certKey,
        certPem: out.certificatePem,
        meshCaPem: out.meshCaPem,
        certExpiresAt: out.expiresAt,
        manifestHead: fromBase64Url(out.manifestHead),
        workerId: out.workerId,
      };
    } finally {
      await agent.close();
    }
  }

  /** Ask for a secret by id; the service answers only to a certified worker, sealed to its key. */
  async fetchSecret(sid: Uint8Array): Promise<SealedSecret> {
    if (!this.mtls) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this worker has no certificate from the attestation service');
    const res = await request(`${this.baseUrl}/v1/workers/secrets/${toHex(sid)}`, { method: 'GET', dispatcher: this.mtls });
    if (res.statusCode !== 200) throw fromWireError(res.statusCode, await readJson(res));
    return parseSealedSecret(new Uint8Array(await res.body.arrayBuffer()));
  }

  /** Ask for the key of some weights for an AI code; released only if the manifest allows it. */
  async fetchModelKey(weightsDigest: string, aiCode: string): Promise<SealedModelKey> {
    if (!this.mtls) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'this worker has no certificate from the attestation service');
    const hex = weightsDigest.replace(/^sha256:/, '');
    const res = await request(`${this.baseUrl}/v1/workers/models/${hex}/key?aiCode=${encodeURIComponent(aiCode)}`, { method: 'GET', dispatcher: this.mtls });
    if (res.statusCode !== 200) throw fromWireError(res.statusCode, await readJson(res));
    return parseSealedModelKey(new Uint8Array(await res.body.arrayBuffer()));
  }

  async close(): Promise<void> {
    await this.mtls?.close();
  }
}
