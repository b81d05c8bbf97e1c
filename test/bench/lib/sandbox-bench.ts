/**
 * Time to a served first request: the sample AI code started under gVisor (worker-os/sandbox `Sandbox`,
 * the local manifest's command and sandbox settings, the model on stdin) against the same AI code
 * started as a plain process (`node server.mjs`, OBSCURA_LISTEN on a temp socket, model on stdin).
 */
import { canConnect } from '../../../worker-os/sandbox/sandbox.ts';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'undici';
import { localManifest, sampleAiCodeDir, SAMPLE_AI_CODE } from '../../../client/cli/local-deployment/local-manifest.ts';
import { ensureRunsc } from '../../../worker-os/sandbox/runsc.ts';
import { Sandbox } from '../../../worker-os/sandbox/sandbox.ts';
import { directChat } from './paths.ts';
import { median, round, spreadOf, type Spread } from './stats.ts';

const FIRST_REQUEST_TOKENS = 64;


async function firstRequest(socketPath: string): Promise<void> {
  const c = new Client('http://ai-code', { socketPath });
  try {
    await directChat(c, FIRST_REQUEST_TOKENS);
  } finally {
    await c.close();
  }
}

interface Setup {
  dir: string;
  modelPath: string;
  model: Uint8Array;
  command: string[];
  settings: ReturnType<typeof localManifest>['aiCode'][number]['sandbox'];
  runsc: string;
}

function setup(dir: string): Setup {
  mkdirSync(dir, { recursive: true });
  const modelPath = join(dir, `${SAMPLE_AI_CODE}.json`);
  execFileSync(process.execPath, [join(sampleAiCodeDir(), 'build-model.mjs'), modelPath]);
  // The command and sandbox settings exactly as `obscura up` puts them in the local manifest.
  const entry = localManifest({
    localRootPem: '',
    owner: { id: 'bench', privateKey: undefined as unknown as CryptoKey, publicKeyJwk: { kty: 'EC', crv: 'P-256', x: '', y: '' } },
    modelPath,
  }).aiCode.find((a) => a.name === SAMPLE_AI_CODE)!;
  return { dir, modelPath, model: new Uint8Array(readFileSync(modelPath)), command: entry.command, settings: entry.sandbox, runsc: ensureRunsc(() => {}) };
}

const ENV = { OBSCURA_MODEL_NAME: SAMPLE_AI_CODE, OBSCURA_TOKENS_PER_SECOND: '0' };

async function gvisorOnce(s: Setup, i: number): Promise<number> {
  const t0 = performance.now();
  const sandbox = new Sandbox({
    id: `bench-start-${process.pid}-${i}`,
    runsc: s.runsc,
    stateDir: join(s.dir, 'sandbox-state'),
    appDir: sampleAiCodeDir(),
    command: s.command,
    env: ENV,
    settings: s.settings,
    stdin: s.model,
  });
  try {
    await sandbox.start();
    await firstRequest(sandbox.socketPath);
    return performance.now() - t0;
  } finally {
    await sandbox.stop();
  }
}

async function plainOnce(s: Setup, i: number): Promise<number> {
  const socketPath = join(s.dir, `plain-${i}.sock`);
  rmSync(socketPath, { force: true });
  const t0 = performance.now();
  const child = spawn(s.command[0], [join(sampleAiCodeDir(), 'server.mjs')], {
    env: { ...process.env, ...ENV, OBSCURA_LISTEN: socketPath },
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  try {
    child.stdin!.on('error', () => {});
    child.stdin!.end(s.model);
    const deadline = Date.now() + 30_000;
    // Poll for the socket (every 10 ms; the Sandbox polls every 50 ms, which is part of its cost).
    while (!(existsSync(socketPath) && (await canConnect(socketPath)))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('the plain AI code did not listen');
      await new Promise((r) => setTimeout(r, 10));
    }
    await firstRequest(socketPath);
    return performance.now() - t0;
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(socketPath, { force: true });
  }
}

export interface SandboxStartBench {
  gvisorMs: number;
  gvisorSpread: Spread;
  plainMs: number;
  plainSpread: Spread;
  addedMs: number;
  addedSpread: Spread;
  runs: number;
}

export async function sandboxStart(dir: string, runs: number): Promise<SandboxStartBench> {
  const s = setup(dir);
  // Warm-up (page cache, runsc binary, node's code cache): one of each, not counted.
  await plainOnce(s, 0);
  await gvisorOnce(s, 0);
  const g: number[] = [];
  const p: number[] = [];
  for (let i = 1; i <= runs; i++) {
    p.push(await plainOnce(s, i));
    g.push(await gvisorOnce(s, i));
  }
  const added = g.map((x, i) => x - p[i]);
  return {
    gvisorMs: round(median(g), 1),
    gvisorSpread: spreadOf(g),
    plainMs: round(median(p), 1),
    plainSpread: spreadOf(p),
    addedMs: round(median(added), 1),
    addedSpread: spreadOf(added),
    runs,
  };
}
