/**
 * The local deployment's first manifest and client policy, made from the reference values of the
 * images in this checkout: the worker's measurement (reference configuration), the sample AI code's
 * digest and the sample model's digest, the local simulated roots (SEV-SNP, TDX, GPU), and the local
 * owner key.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../../shared/bytes.ts';
import type { ManifestInput } from '../../../shared/manifest/schema.ts';
import { directoryDigest, imageMeasurement, PROJECT_ROOT } from '../../../worker-os/image-digest.ts';
import { workerMeasuredConfig } from '../../../backend/worker-config.ts';
import type { ClientPolicyInput } from '../../sdk/policy.ts';
import { DEFAULT_SANDBOX_SETTINGS } from '../../../worker-os/sandbox/defaults.ts';
import { simulatedGpuRootOf } from '../../../worker-os/tee/simulated-snp.ts';
import { simulatedTdxRootOf } from '../../../worker-os/tee/simulated-tdx.ts';
import { simulatedGpuReference } from '../../../worker-os/tee-sim/simulated-gpu.ts';

export const LOCAL_OWNER_ID = 'local-owner';
export const SAMPLE_AI_CODE = 'sample-ngram';
export const LLAMA_AI_CODE = 'llama';

export interface OwnerKey {
  id: string;
  privateKey: CryptoKey;
  publicKeyJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
}

/** The local owner's signing key (ECDSA P-256), kept as a 0600 JWK file in the state directory. */
export async function ensureOwnerKey(stateDir: string): Promise<OwnerKey> {
  const path = join(stateDir, 'owner-key.jwk');
  let jwk: JsonWebKey;
  if (existsSync(path)) jwk = JSON.parse(readFileSync(path, 'utf8'));
  else {
    const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    jwk = await crypto.subtle.exportKey('jwk', kp.privateKey);
    writeFileSync(path, JSON.stringify(jwk), { mode: 0o600 });
    chmodSync(path, 0o600);
  }
  const privateKey = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return { id: LOCAL_OWNER_ID, privateKey, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } };
}

export function sampleAiCodeDir(): string {
  return join(PROJECT_ROOT, 'worker-os', 'ai-code', SAMPLE_AI_CODE);
}

export function llamaAiCodeDir(): string {
  return join(PROJECT_ROOT, 'worker-os', 'ai-code', LLAMA_AI_CODE);
}

export function fileDigest(path: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
}

export function referenceWorkerMeasurement(): string {
  return toHex(imageMeasurement('worker', workerMeasuredConfig()));
}

export function referenceServiceMeasurement(): string {
  return toHex(imageMeasurement('attestation-service', {}));
}

/**
 * `llamaModelPath`: also allow the llama AI code (engine vendored by its prepare.mjs) and its model.
 * `gpuRootPem`: the simulated machine's GPU root (default: the one ensureSimulatedHardware set up with
 * `localRootPem` in this process); with one, the manifest requires the simulated H100's evidence.
 * `tdxRootPem`: the simulated machine's TDX root (found the same way); with one, a worker started with
 * `--tee tdx` is admitted too, its MRTD being the same reference measurement.
 */
export function localManifest(input: { localRootPem: string; owner: OwnerKey; modelPath: string; llamaModelPath?: string; gpuRootPem?: string; tdxRootPem?: string }): ManifestInput {
  const gpuRootPem = input.gpuRootPem ?? simulatedGpuRootOf(input.localRootPem);
  const tdxRootPem = input.tdxRootPem ?? simulatedTdxRootOf(input.localRootPem);
  const workerMeasurement = referenceWorkerMeasurement();
  return {
    version: 1,
    platforms: {
      'sev-snp': { trustedRoots: [input.localRootPem], measurements: [workerMeasurement], allowDebug: false, allowMigrationAgent: false, allowSmt: true },
      ...(tdxRootPem ? { tdx: { trustedRoots: [tdxRootPem], mrTd: [workerMeasurement], acceptedTcbStatuses: ['UpToDate' as const], allowDebug: false } } : {}),
    },
    ...(gpuRootPem ? { gpus: { 'nvidia-h100': simulatedGpuReference(gpuRootPem) } } : {}),
    aiCode: [
      {
        name: SAMPLE_AI_CODE,
        imageDigest: directoryDigest(sampleAiCodeDir()),
        command: ['/usr/bin/node', '/app/server.mjs'],
        sandbox: { ...DEFAULT_SANDBOX_SETTINGS },
      },
      ...(input.llamaModelPath
        ? [{
            name: LLAMA_AI_CODE,
            imageDigest: directoryDigest(llamaAiCodeDir()),
            command: ['/usr/bin/node', '/app/server.mjs'],
            // The same sandbox as the sample's: the model (weights in /tmp) fits the scratch tmpfs.
            sandbox: { ...DEFAULT_SANDBOX_SETTINGS },
          }]
        : []),
    ],
    models: [{ name: SAMPLE_AI_CODE, weightsDigest: fileDigest(input.modelPath), aiCode: [SAMPLE_AI_CODE] }, ...(input.llamaModelPath ? [{ name: LLAMA_AI_CODE, weightsDigest: fileDigest(input.llamaModelPath), aiCode: [LLAMA_AI_CODE] }] : [])],
    owners: [{ id: input.owner.id, publicKeyJwk: input.owner.publicKeyJwk }],
    limits: { secretLifetimeMs: 60 * 60_000, bundleMaxAgeMs: 10 * 60_000, replayWindowMs: 5 * 60_000, workerCertLifetimeMs: 60 * 60_000 },
    // This checkout's service image may hold the state (a handoff to a new simulated machine).
    attestationService: { measurements: [referenceServiceMeasurement()] },
  };
}

export function localClientPolicy(localRootPem: string): ClientPolicyInput {
  return {
    version: 1,
    service: { platform: 'sev-snp', trustedRoots: [localRootPem], measurements: [referenceServiceMeasurement()], allowDebug: false },
    maxBundleAgeMs: 10 * 60_000,
    minProtocolVersion: 1,
    onManifestFork: 'refuse',
    secretLifetimeMs: 30 * 60_000,
  };
}
