/**
 * `obscura up`: the whole local deployment in the foreground: attestation service, one worker or more
 * (AI code under gVisor), the edge in workerd (wrangler dev) and the client proxy. Ctrl-C stops all of it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fromUtf8 } from '../../../shared/bytes.ts';
import { ObscuraError } from '../../../shared/errors.ts';
import { parseManifest } from '../../../shared/manifest/validate-manifest.ts';
import { DEFAULT_PADDING_BUCKETS_BYTES } from '../../../shared/protocol/padding.ts';
import { PROJECT_ROOT } from '../../../worker-os/image-digest.ts';
import { ensureRunsc } from '../../../worker-os/sandbox/runsc.ts';
import { sweepSandboxes } from '../../../worker-os/sandbox/sandbox.ts';
import { ensureSimulatedHardware } from '../../../worker-os/tee/simulated-snp.ts';
import { startClientProxy } from '../../proxy/start.ts';
import { parseClientPolicy } from '../../sdk/policy.ts';
import type { CliIO, Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { ensureLocalPki } from '../local-deployment/local-pki.ts';
import { attestationServiceStateDir, ensureLocalManifest, explainStateRefusal } from './manifest/local-admin.ts';
import { ensureOwnerKey, LLAMA_AI_CODE, llamaAiCodeDir, localClientPolicy, localManifest, SAMPLE_AI_CODE, sampleAiCodeDir } from '../local-deployment/local-manifest.ts';
import { PartSupervisor, RESTART_POLICIES, type RestartPolicy } from '../local-deployment/part-supervisor.ts';
import { nodeTs, waitForHttps } from '../local-deployment/parts.ts';

const PART_START_TIMEOUT_MS = 90_000;
const MAX_WORKERS = 16;

const usage = `obscura up [options]

Runs the whole local deployment in the foreground; Ctrl-C (or SIGTERM) stops everything it started.

Options (each also an environment variable):
  --state-dir DIR        all state (keys, logs, sandboxes)      OBSCURA_STATE_DIR   (.obscura)
  --as-port N            attestation service, HTTPS             OBSCURA_AS_PORT     (8443)
  --worker-port N        worker agent + encryption proxy, HTTPS OBSCURA_WORKER_PORT (9443)
  --workers N            how many workers: worker i on WORKER-PORT+i-1, state in worker, worker-2,
                         ...; each its own region for the edge, which spreads requests over them
                         and fails over between them
                                                                OBSCURA_WORKERS     (1)
  --edge-port N          edge (workerd), HTTPS                  OBSCURA_EDGE_PORT   (8787)
  --proxy-port N         client proxy, OpenAI-compatible, HTTP  OBSCURA_PROXY_PORT  (8080)
  --padding-buckets LIST worker's event padding sizes (measured) OBSCURA_PADDING_BUCKETS
  --tokens-per-second N  pace the sample AI code (0 = unpaced)  OBSCURA_TOKENS_PER_SECOND (0)
  --ai-code NAME         the worker's AI code: sample-ngram, or llama (llama.cpp, a tiny generated
                         model; both are in the manifest)     OBSCURA_AI_CODE     (sample-ngram)
  --edge-runtime R       how workerd runs the edge: miniflare (default) or wrangler (wrangler dev)
  --api-key KEY          the edge API key the client proxy sends OBSCURA_API_KEY (none: open local edge)
  --edge-url URL         the edge URL the client proxy uses (default https://127.0.0.1:EDGE-PORT),
                         e.g. a TLS front in between
  --worker-url URL[,URL] the worker URL(s) the edge routes to, in worker order (default
                         https://127.0.0.1:WORKER-PORT), e.g. a tunnel or load balancer in front of it
  --restart POLICY       a part that exits unexpectedly: no (stop everything; with several workers,
                         the others keep serving) or on-failure (start it again, at most 3 times a
                         minute)                                OBSCURA_RESTART     (no)
  --help

While it runs, <state>/parts.json lists each part's name, pid, URL, log and restarts.`;

function option(values: Record<string, unknown>, name: string, env: string, fallback: string): string {
  const v = values[name];
  return typeof v === 'string' ? v : (process.env[env] ?? fallback);
}

export const upCommand: Command = {
  name: 'up',
  summary: 'run the whole local deployment (attestation service, worker, edge, client proxy)',
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      options: {
        'state-dir': { type: 'string' },
        'as-port': { type: 'string' },
        'worker-port': { type: 'string' },
        'edge-port': { type: 'string' },
        'proxy-port': { type: 'string' },
        'padding-buckets': { type: 'string' },
        'tokens-per-second': { type: 'string' },
        'ai-code': { type: 'string' },
        'edge-url': { type: 'string' },
        'api-key': { type: 'string' },
        'edge-runtime': { type: 'string' },
        'worker-url': { type: 'string' },
        workers: { type: 'string' },
        restart: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return EXIT.OK;
    }
    const stateDir = resolve(option(values, 'state-dir', 'OBSCURA_STATE_DIR', '.obscura'));
    const ports = {
      as: Number(option(values, 'as-port', 'OBSCURA_AS_PORT', '8443')),
      worker: Number(option(values, 'worker-port', 'OBSCURA_WORKER_PORT', '9443')),
      edge: Number(option(values, 'edge-port', 'OBSCURA_EDGE_PORT', '8787')),
      proxy: Number(option(values, 'proxy-port', 'OBSCURA_PROXY_PORT', '8080')),
    };
    const paddingBuckets = option(values, 'padding-buckets', 'OBSCURA_PADDING_BUCKETS', DEFAULT_PADDING_BUCKETS_BYTES.join(','));
    const tokensPerSecond = option(values, 'tokens-per-second', 'OBSCURA_TOKENS_PER_SECOND', '0');
    const aiCode = option(values, 'ai-code', 'OBSCURA_AI_CODE', SAMPLE_AI_CODE);
    if (aiCode !== SAMPLE_AI_CODE && aiCode !== LLAMA_AI_CODE) {
      io.err(`[obscura] --ai-code must be ${SAMPLE_AI_CODE} or ${LLAMA_AI_CODE}`);
      return EXIT.USAGE;
    }
    const workerCount = Number(option(values, 'workers', 'OBSCURA_WORKERS', '1'));
    if (!Number.isInteger(workerCount) || workerCount < 1 || workerCount > MAX_WORKERS) {
      io.err(`[obscura] --workers must be a whole number from 1 to ${MAX_WORKERS}`);
      return EXIT.USAGE;
    }
    const restart = option(values, 'restart', 'OBSCURA_RESTART', 'no') as RestartPolicy;
    if (!RESTART_POLICIES.includes(restart)) {
      io.err(`[obscura] --restart must be ${RESTART_POLICIES.join(' or ')}`);
      return EXIT.USAGE;
    }
    const workerUrlOverrides = (values['worker-url'] ?? '').split(',').filter((u) => u !== '');
    const edgeRuntime = option(values, 'edge-runtime', 'OBSCURA_EDGE_RUNTIME', 'miniflare');
    if (edgeRuntime !== 'miniflare' && edgeRuntime !== 'wrangler') throw new ObscuraError('ERR_USAGE', '--edge-runtime is miniflare or wrangler');
    const step = (line: string) => io.out(`[obscura] ${line}`);
    const parts = new PartSupervisor({ stateDir, restart, step });
    let stopping = false;
    let runsc = '';
    // Worker i (from 0): its name, state directory and log are `worker` for the first, `worker-2`, ... after.
    const workerName = (i: number) => (i === 0 ? 'worker' : `worker-${i + 1}`);

    const stopAll = async () => {
      if (stopping) return;
      stopping = true;
      step('stopping');
      await parts.stopAll();
      if (runsc) for (let i = 0; i < workerCount; i++) sweepSandboxes(runsc, join(stateDir, workerName(i)));
      step('stopped');
    };

    try {
      mkdirSync(join(stateDir, 'logs'), { recursive: true, mode: 0o700 });
      runsc = ensureRunsc(step);
      step(`gVisor: ${runsc}`);
      const pki = await ensureLocalPki(stateDir);
      const hardwareDir = join(stateDir, 'tee-sim');
      const { localRootPem } = await ensureSimulatedHardware(hardwareDir);
      step(`simulated TEE ready (local SEV-SNP root in ${hardwareDir})`);

      const modelPath = join(stateDir, 'models', `${SAMPLE_AI_CODE}.json`);
      mkdirSync(join(stateDir, 'models'), { recursive: true });
      if (!existsSync(modelPath)) execFileSync(process.execPath, [join(sampleAiCodeDir(), 'build-model.mjs'), modelPath]);
      // The llama AI code: its engine copied into its directory (digested), its tiny model generated.
      let llamaModelPath: string | undefined = join(stateDir, 'models', `${LLAMA_AI_CODE}.gguf`);
      try {
        execFileSync(process.execPath, [join(llamaAiCodeDir(), 'prepare.mjs'), llamaModelPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        if (aiCode === LLAMA_AI_CODE) throw e;
        step(`the llama AI code is not available (${String((e as { stderr?: Buffer }).stderr ?? e).trim().split('\n').pop()}); the manifest allows only ${SAMPLE_AI_CODE}`);
        llamaModelPath = undefined;
      }

      // 1. Attestation service.
      const asUrl = `https://127.0.0.1:${ports.as}`;
      const asTs = nodeTs('attestation-service/main.ts', [
        '--port', String(ports.as),
        '--tls-cert', pki.servers['attestation-service'].certPath,
        '--tls-key', pki.servers['attestation-service'].keyPath,
        '--tee-dir', hardwareDir,
        '--state-dir', attestationServiceStateDir(stateDir),
      ]);
      await parts.start({
        name: 'attestation service',
        ...asTs,
        logPath: join(stateDir, 'logs', 'attestation-service.log'),
        url: asUrl,
        ready: (as) =>
          waitForHttps(`${asUrl}/healthz`, pki.caPem, { timeoutMs: PART_START_TIMEOUT_MS, part: as }).catch((e) => {
            throw new Error(explainStateRefusal(as.logPath, stateDir) ?? (e as Error).message);
          }),
      });
      step(`attestation service on ${asUrl}`);

      // 2. Admin flow: verify the service's evidence against the admin's policy, then make sure its
      //    manifest admits this checkout (set on first use; kept across restarts: the state is sealed).
      const clientPolicy = localClientPolicy(localRootPem);
      const adminPolicy = parseClientPolicy(clientPolicy);
      const owner = await ensureOwnerKey(stateDir);
      const manifest = parseManifest(localManifest({ localRootPem, owner, modelPath, llamaModelPath }));
      // The worker's weights are encrypted at rest; their key goes to the attestation service only.
      const workerModelPlain = aiCode === LLAMA_AI_CODE ? llamaModelPath! : modelPath;
      const sealedModels = await ensureLocalManifest({ asUrl, caPem: pki.caPem, stateDir, policy: adminPolicy, owner, manifest, step, sealModels: [workerModelPlain] });

      // 3. Workers: agent, encryption proxy, AI code under gVisor; started together, each its own
      //    port, state directory (so its own sandbox id) and log.
      const workers = Array.from({ length: workerCount }, (_, i) => {
        const name = workerName(i);
        const url = `https://127.0.0.1:${ports.worker + i}`;
        const logPath = join(stateDir, 'logs', `${name}.log`);
        return { name, url, logPath, region: i === 0 ? 'local' : `local-${i + 1}`, edgeUrl: workerUrlOverrides[i] ?? url };
      });
      await Promise.all(
        workers.map((w, i) =>
          parts.start({
            name: w.name,
            ...nodeTs('backend/main.ts', [
              '--port', String(ports.worker + i),
              '--as-url', asUrl,
              '--ca', pki.caPath,
              '--tls-cert', pki.servers.worker.certPath,
              '--tls-key', pki.servers.worker.keyPath,
              '--state-dir', join(stateDir, w.name),
              '--tee-dir', hardwareDir,
              '--ai-code', aiCode,
              '--model-file', sealedModels.get(workerModelPlain) ?? workerModelPlain,
              '--padding-buckets', paddingBuckets,
              '--tokens-per-second', tokensPerSecond,
            ]),
            logPath: w.logPath,
            url: w.url,
            group: 'worker',
            ready: (worker) =>
              waitForHttps(`${w.url}/healthz`, pki.caPem, {
                timeoutMs: PART_START_TIMEOUT_MS,
                part: worker,
                // A refused worker cannot get its weights' key, so its AI code does not start: it answers, unready.
                accept: (status) => status === 200 || refusedRegistration(w.logPath) !== undefined,
              }),
          }),
        ),
      );
      for (const w of workers) {
        const refused = refusedRegistration(w.logPath);
        if (refused) step(`WARNING: ${w.name === 'worker' ? "the worker's" : `${w.name}'s`} registration was refused (${refused}); requests will fail until the manifest admits it`);
        step(`${w.name} on ${w.url} (AI code "${aiCode}" under gVisor${refused ? ', NOT attested' : ', attested'})`);
      }

      // 4. Edge in workerd.
      const edgeUrl = `https://127.0.0.1:${ports.edge}`;
      // Built as `wrangler deploy` builds it, served by workerd through Miniflare (edge/local-server.ts).
      const edgeVars: Record<string, string> = {
        AS_URL: asUrl,
        // One region per worker, all equally near: the edge spreads requests over the healthy ones in
        // turn and fails over to the next before the first byte (edge/src/relay.ts).
        WORKERS: JSON.stringify(workers.map((w) => ({ region: w.region, url: w.edgeUrl }))),
        TRUSTED_ROOTS: localRootPem,
        BUNDLE_MAX_AGE_MS: String(adminPolicy.maxBundleAgeMs),
        // The chat page at / uses this local policy (a production page ships its own with its code).
        CLIENT_POLICY: JSON.stringify(clientPolicy),
      };
      // Miniflare by default (no file watching, no body logging: see edge/local-server.ts);
      // `--edge-runtime wrangler` runs the very same worker with `wrangler dev` instead.
      const edgeTs =
        edgeRuntime === 'wrangler'
          ? {
              command: join(PROJECT_ROOT, 'node_modules', '.bin', 'wrangler'),
              args: [
                'dev', '--local', '--ip', '127.0.0.1', '--port', String(ports.edge),
                '--local-protocol', 'https',
                '--https-key-path', pki.servers.edge.keyPath,
                '--https-cert-path', pki.servers.edge.certPath,
                '--persist-to', join(stateDir, 'edge'),
                '--show-interactive-dev-session=false',
                '--log-level', 'warn',
                ...Object.entries(edgeVars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
              ],
            }
          : nodeTs('edge/local-server.ts', [
              '--port', String(ports.edge),
              '--tls-cert', pki.servers.edge.certPath,
              '--tls-key', pki.servers.edge.keyPath,
              '--persist', join(stateDir, 'edge'),
              ...Object.entries(edgeVars).flatMap(([k, v]) => ['--var', `${k}=${v}`]),
            ]);
      let edgeAuth = 'unknown';
      await parts.start({
        name: 'edge',
        ...edgeTs,
        env: {
          NODE_EXTRA_CA_CERTS: pki.caPath,
          CLOUDFLARE_CF_FETCH_ENABLED: 'false',
          WRANGLER_SEND_METRICS: 'false',
          WRANGLER_HIDE_BANNER: 'true', // no update check against the registry
          WRANGLER_LOG_PATH: join(stateDir, 'logs', 'wrangler'),
          CI: 'true', // wrangler dev: no interactive session
        },
        logPath: join(stateDir, 'logs', 'edge.log'),
        url: edgeUrl,
        ready: (edge) =>
          waitForHttps(`${edgeUrl}/healthz`, pki.caPem, {
            timeoutMs: PART_START_TIMEOUT_MS,
            part: edge,
            accept: (status, body) => {
              if (status !== 200) return false;
              edgeAuth = (JSON.parse(body) as { auth?: string }).auth ?? edgeAuth;
              return true;
            },
          }),
      });
      step(`edge (workerd via ${edgeRuntime === 'wrangler' ? 'wrangler dev' : 'Miniflare'}) on ${edgeUrl}; chat page: ${edgeUrl}/ (it verifies and seals in the browser; trust the local CA ${pki.caPath} or accept the warning)`);
      step(
        edgeAuth === 'open'
          ? 'edge API keys: open (any request is accepted until a key is added: node edge/scripts/api-key.mjs add --name NAME)'
          : `edge API keys: ${edgeAuth} (the client proxy sends --api-key / OBSCURA_API_KEY)`,
      );

      // 5. Client policy and proxy (in this process: the proxy is the user's side).
      const policyPath = join(stateDir, 'client-policy.json');
      writeFileSync(policyPath, JSON.stringify(clientPolicy, null, 2));
      const proxy = await startClientProxy({
        endpoint: values['edge-url'] ?? edgeUrl,
        policyPath,
        port: ports.proxy,
        stateDir,
        caPem: pki.caPem,
        apiKey: values['api-key'] ?? process.env.OBSCURA_API_KEY,
        onWarning: (m) => step(`WARNING: ${m}`),
      });
      step(`client proxy on http://127.0.0.1:${ports.proxy} (policy ${policyPath}; service measurement ${adminPolicy.service.measurements[0].slice(0, 16)}…)`);

      const proxyUrl = `http://127.0.0.1:${ports.proxy}/v1`;
      io.out(
        `[obscura] ready: ${proxyUrl}  try: curl -s ${proxyUrl}/chat/completions -H 'content-type: application/json' -d '{"model":"${aiCode}","messages":[{"role":"user","content":"Tell me about the sea"}]}'`,
      );

      await new Promise<void>((resolveWait) => {
        const onSignal = () => resolveWait();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        void parts.untilFatal().then(resolveWait);
      });
      await proxy.close();
      await stopAll();
      return EXIT.OK;
    } catch (e) {
      io.err(`[obscura] failed: ${(e as Error).message}`);
      await stopAll();
      return e instanceof ObscuraError && e.code === 'ERR_USAGE' ? EXIT.USAGE : EXIT.UNAVAILABLE;
    }
  },
};

/** The code of the worker's last refused registration, if its last registration attempt was refused. */
function refusedRegistration(logPath: string): string | undefined {
  let last: { event?: string; code?: string } | undefined;
  try {
    for (const line of fromUtf8(readFileSync(logPath)).split('\n')) {
      if (!line.startsWith('{')) continue;
      const ev = JSON.parse(line) as { event?: string; code?: string };
      if (ev.event === 'registered' || ev.event === 'registration-refused') last = ev;
    }
  } catch {
    return undefined;
  }
  return last?.event === 'registration-refused' ? last.code : undefined;
}
