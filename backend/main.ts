/**
 * The worker agent process: `node --import tsx backend/main.ts --port 9443 ...`. It attests to the
 * attestation service, runs the AI code in gVisor, and serves the encryption proxy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sha256, toHex } from '../shared/bytes.ts';
import { ObscuraError } from '../shared/errors.ts';
import { DEFAULT_PADDING_BUCKETS_BYTES } from '../shared/protocol/padding.ts';
import { DEFAULT_REPLAY_WINDOW_MS, LABEL_MODEL_KEY_TO_WORKER } from '../shared/protocol/constants.ts';
import { decryptWeights, isEncryptedWeights, parseWeightsHeader } from '../shared/protocol/encrypted-weights.ts';
import { openModelKey } from '../shared/protocol/model-key.ts';
import type { Manifest } from '../shared/manifest/schema.ts';
import { imageMeasurement, PROJECT_ROOT } from '../worker-os/image-digest.ts';
import { createLogger, flag, onShutdown } from '../worker-os/process-lifecycle.ts';
import { ensureRunsc } from '../worker-os/sandbox/runsc.ts';
import { sweepSandboxes } from '../worker-os/sandbox/sandbox.ts';
import { simulatedSnpProvider } from '../worker-os/tee/simulated-snp.ts';
import { simulatedTdxProvider } from '../worker-os/tee/simulated-tdx.ts';
import { simulatedGpuProvider } from '../worker-os/tee/simulated-gpu.ts';
import type { GpuEvidenceProvider } from '../worker-os/tee/provider.ts';
import { AiCodeSupervisor } from './ai-code-supervisor.ts';
import { createAgentServer } from './agent-server.ts';
import { AgentApi, AsManifestSource } from './agent-api.ts';
import { AttestationServiceClient, type WorkerIdentity } from './as-client.ts';
import { EncryptionProxy } from './encryption-proxy.ts';
import { ReplayGuard } from './replay-guard.ts';
import { SecretCache } from './secret-cache.ts';
import { workerMeasuredConfig } from './worker-config.ts';

const REGISTER_RETRY_MS = 2_000;

const argv = process.argv.slice(2);
const log = createLogger('worker');
const host = flag(argv, 'host', 'OBSCURA_WORKER_HOST', '127.0.0.1');
const port = Number(flag(argv, 'port', 'OBSCURA_WORKER_PORT', '9443'));
const asUrl = flag(argv, 'as-url', 'OBSCURA_AS_URL', 'https://127.0.0.1:8443');
const caPem = readFileSync(flag(argv, 'ca', 'OBSCURA_CA_CERT'), 'utf8');
const tls = { certPem: readFileSync(flag(argv, 'tls-cert', 'OBSCURA_WORKER_TLS_CERT'), 'utf8'), keyPem: readFileSync(flag(argv, 'tls-key', 'OBSCURA_WORKER_TLS_KEY'), 'utf8') };
const stateDir = flag(argv, 'state-dir', 'OBSCURA_WORKER_STATE_DIR');
const teeDir = flag(argv, 'tee-dir', 'OBSCURA_TEE_DIR');
const aiCodeName = flag(argv, 'ai-code', 'OBSCURA_AI_CODE', 'sample-ngram');
const modelFile = flag(argv, 'model-file', 'OBSCURA_MODEL_FILE');
const endpoint = flag(argv, 'endpoint', 'OBSCURA_WORKER_ENDPOINT', `https://${host}:${port}`);
const tokensPerSecond = flag(argv, 'tokens-per-second', 'OBSCURA_TOKENS_PER_SECOND', '0');
const paddingBuckets = flag(argv, 'padding-buckets', 'OBSCURA_PADDING_BUCKETS', DEFAULT_PADDING_BUCKETS_BYTES.join(','))
  .split(',')
  .map(Number)
  .filter((n) => n > 0);

const measurement = imageMeasurement('worker', workerMeasuredConfig({ paddingBuckets }));
// The machine's TEE: the simulated SEV-SNP chip (default) or the simulated TDX machine, each reporting
// the same image measurement (as MEASUREMENT or MRTD).
const teeKind = flag(argv, 'tee', 'OBSCURA_WORKER_TEE', 'snp');
if (teeKind !== 'snp' && teeKind !== 'tdx') throw new ObscuraError('ERR_USAGE', '--tee must be snp or tdx');
const tee = teeKind === 'tdx' ? await simulatedTdxProvider({ hardwareDir: teeDir, measurement }) : await simulatedSnpProvider({ hardwareDir: teeDir, measurement });
// The machine's GPUs: 'simulated' (the simulated machine's H100) or 'none' (a CPU-only worker, which a
// manifest admits only when it requires no GPU).
const gpuMode = flag(argv, 'gpu', 'OBSCURA_WORKER_GPU', 'simulated');
if (gpuMode !== 'simulated' && gpuMode !== 'none') throw new ObscuraError('ERR_USAGE', '--gpu must be simulated or none');
const gpus: GpuEvidenceProvider[] = gpuMode === 'none' ? [] : [await simulatedGpuProvider({ hardwareDir: teeDir })];
const runsc = ensureRunsc((line) => log({ event: 'step', line }));
sweepSandboxes(runsc, stateDir);

async function fetchManifest(): Promise<Manifest> {
  const agent = new Agent({ connect: { ca: caPem } });
  try {
    const res = await request(`${asUrl}/v1/manifest`, { dispatcher: agent });
    const body = (await res.body.json()) as { manifest: Manifest | null };
    if (!body.manifest) throw new ObscuraError('ERR_NO_WORKER', 'the attestation service has no manifest yet');
    return body.manifest;
  } finally {
    await agent.close();
  }
}

const asClient = new AttestationServiceClient(asUrl, { ca: caPem });
const secrets = new SecretCache(asClient, Date.now, () => register('manifest-changed'));
let manifest: Manifest | undefined;
for (let attempt = 0; !manifest; attempt++) {
  try {
    manifest = await fetchManifest();
  } catch (e) {
    if (attempt % 10 === 0) log({ event: 'waiting-for-manifest', code: (e as ObscuraError).code ?? 'unreachable' });
    await new Promise((r) => setTimeout(r, 500));
  }
}
const entry = manifest.aiCode.find((a) => a.name === aiCodeName);
if (!entry) throw new ObscuraError('ERR_MEASUREMENT_NOT_ALLOWED', `the manifest allows no AI code named "${aiCodeName}"`);

// Weights encrypted at rest (the usual case) are opened in memory with the model key the service
// releases to this worker once it is attested; plaintext weights files still work for development.
const weightsEncrypted = isEncryptedWeights(readFileSync(modelFile).subarray(0, 16));
let identity: WorkerIdentity | undefined;

async function loadWeights(): Promise<Uint8Array> {
  const bytes = new Uint8Array(readFileSync(modelFile));
  if (!isEncryptedWeights(bytes)) return bytes;
  const { weightsDigest } = parseWeightsHeader(bytes);
  const ask = async () => {
    const current = identity;
    if (!current) throw new ObscuraError('ERR_WORKER_NOT_ATTESTED', 'the worker is not attested, so it cannot get the key of its weights');
    return { current, sealed: await asClient.fetchModelKey(weightsDigest, aiCodeName) };
  };
  // After a manifest change (a restart of the AI code can come first), register again and ask again.
  const { current, sealed } = await ask().catch(async (e) => {
    if (!(e instanceof ObscuraError) || e.code !== 'ERR_WORKER_NOT_ATTESTED' || !identity) throw e;
    await register('manifest-changed');
    return ask();
  });
  if (sealed.weightsDigest !== weightsDigest) throw new ObscuraError('ERR_VALUE_MISMATCH', 'the service released the key of other weights');
  const key = await openModelKey({ sealed, recipientKey: current.hpke.privateKey, label: LABEL_MODEL_KEY_TO_WORKER, context: await sha256(current.hpke.publicKey) });
  try {
    return await decryptWeights(bytes, key, weightsDigest);
  } finally {
    key.fill(0);
  }
}

const supervisor = new AiCodeSupervisor(
  {
    entry,
    appDir: join(PROJECT_ROOT, 'worker-os', 'ai-code', aiCodeName),
    weights: loadWeights,
    env: { OBSCURA_MODEL_NAME: aiCodeName, OBSCURA_TOKENS_PER_SECOND: tokensPerSecond },
  },
  { runsc, stateDir, log },
);
if (!weightsEncrypted) await supervisor.start();

const proxy = new EncryptionProxy({
  socketPath: () => supervisor.socketPath,
  secrets,
  replay: new ReplayGuard(manifest.limits.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS),
  paddingBuckets,
  log,
});
const agentApi = new AgentApi({ aiCode: [supervisor], manifest: new AsManifestSource(asUrl, caPem), log, measurementHex: toHex(measurement) });
const server = createAgentServer({ tls, proxy, secrets, aiCode: [supervisor], measurementHex: toHex(measurement), agentApi });
await new Promise<void>((r) => server.listen(port, host, r));
log({ event: 'listening', url: `https://${host}:${port}`, measurement: toHex(measurement) });

let aiCodeStart: Promise<void> | undefined;
/** Start the AI code once the worker can get its weights (after a registration); fatal if it fails. */
function startAiCodeWhenAttested(): void {
  if (!weightsEncrypted || aiCodeStart || !identity) return;
  aiCodeStart = supervisor.start().catch((e) => {
    log({ event: 'ai-code-start-failed', code: (e as ObscuraError).code ?? 'error', reason: e instanceof ObscuraError ? e.message : 'the AI code did not start' });
    aiCodeStart = undefined;
    // Without the weights' key (not attested, or revoked) the next registration tries again; any
    // other failure is as fatal as a plaintext start's.
    if (!(e instanceof ObscuraError) || !['ERR_WORKER_NOT_ATTESTED', 'ERR_REVOKED'].includes(e.code)) process.exit(1);
  });
}

let renewTimer: NodeJS.Timeout | undefined;
/** Register (again); on refusal the worker holds no identity, so it opens nothing, and retries later. */
async function register(reason: 'start' | 'renew' | 'retry' | 'manifest-changed' = 'start'): Promise<void> {
  clearTimeout(renewTimer);
  try {
    const next = await asClient.register(tee, endpoint, gpus);
    identity = next;
    await secrets.setIdentity(next.hpke);
    log({ event: 'registered', workerId: next.workerId, reason, tee: tee.platform, hpkeSuite: next.hpke.suite, certExpiresAt: next.certExpiresAt, gpus: gpus.length });
    const renewInMs = Math.max(1_000, ((next.certExpiresAt - Date.now()) * 2) / 3);
    renewTimer = setTimeout(() => void register('renew'), renewInMs);
    startAiCodeWhenAttested();
  } catch (e) {
    const code = (e as ObscuraError).code ?? 'unreachable';
    if (e instanceof ObscuraError && e.failureClass !== 'unavailable') {
      identity = undefined;
      await secrets.setIdentity(undefined);
    }
    log({ event: 'registration-refused', code, reason: e instanceof ObscuraError ? e.message : 'the attestation service is unreachable' });
    renewTimer = setTimeout(() => void register('retry'), REGISTER_RETRY_MS);
  }
}
await register();

onShutdown(async () => {
  clearTimeout(renewTimer);
  await new Promise((r) => server.close(r));
  server.closeAllConnections();
  await supervisor.stop();
  await proxy.close();
  await asClient.close();
}, log);
