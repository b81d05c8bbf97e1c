/**
 * The worker API (agent-api.ts behind agent-server.ts, over HTTPS): owner-signed requests only, and
 * only AI code the manifest allows starts. The sample AI code runs under the real gVisor sandbox.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from '../../shared/bytes.ts';
import type { Manifest } from '../../shared/manifest/schema.ts';
import { parseManifest } from '../../shared/manifest/validate-manifest.ts';
import { AgentApi, signAgentRequest, type CurrentManifest, type ManifestSource } from '../../backend/agent-api.ts';
import { createAgentServer } from '../../backend/agent-server.ts';
import type { AiCodeSupervisor } from '../../backend/ai-code-supervisor.ts';
import type { EncryptionProxy } from '../../backend/encryption-proxy.ts';
import { ensureLocalPki } from '../../client/cli/local-deployment/local-pki.ts';
import { readFileSync } from 'node:fs';
import { freePort } from '../e2e/harness.ts';
import { logSink, SAMPLE, sampleEntry, sampleSupervisor, sampleWeights } from './helpers.ts';

type Jwk = { kty: 'EC'; crv: 'P-256'; x: string; y: string };
async function ownerKey(): Promise<{ privateKey: CryptoKey; jwk: Jwk }> {
  const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey('jwk', kp.publicKey)) as JsonWebKey;
  return { privateKey: kp.privateKey, jwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } };
}

class StaticManifest implements ManifestSource {
  refreshes = 0;
  constructor(public value: CurrentManifest) {}
  async current(opts: { refresh?: boolean } = {}) {
    if (opts.refresh) this.refreshes++;
    return this.value;
  }
}

let dir: string;
let server: Server;
let url: string;
let agent: Agent;
let owner: Awaited<ReturnType<typeof ownerKey>>;
let stranger: Awaited<ReturnType<typeof ownerKey>>;
let source: StaticManifest;
let sample: AiCodeSupervisor;
let notAllowed: AiCodeSupervisor;
let wrongDigest: AiCodeSupervisor;
const logs = logSink();
const head = randomBytes(32);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'obscura-agent-api-'));
  owner = await ownerKey();
  stranger = await ownerKey();
  const manifest: Manifest = parseManifest({
    version: 1,
    platforms: {},
    aiCode: [sampleEntry(), sampleEntry(`sha256:${'00'.repeat(32)}`, 'wrong-digest')],
    owners: [{ id: 'owner-a', publicKeyJwk: owner.jwk }],
    limits: { secretLifetimeMs: 3_600_000, bundleMaxAgeMs: 600_000, replayWindowMs: 300_000, workerCertLifetimeMs: 3_600_000 },
  });
  source = new StaticManifest({ manifest, head });
  const weights = sampleWeights();
  sample = sampleSupervisor({ stateDir: join(dir, 'sample'), log: logs.log, weights });
  notAllowed = sampleSupervisor({ stateDir: join(dir, 'not-allowed'), log: logs.log, weights, entry: sampleEntry(undefined, 'not-allowed') });
  wrongDigest = sampleSupervisor({ stateDir: join(dir, 'wrong'), log: logs.log, weights, entry: sampleEntry(`sha256:${'00'.repeat(32)}`, 'wrong-digest') });
  await sample.start();
  const pki = await ensureLocalPki(join(dir, 'pki'));
  const tls = { certPem: readFileSync(pki.servers.worker.certPath, 'utf8'), keyPem: readFileSync(pki.servers.worker.keyPath, 'utf8') };
  const aiCode = [sample, notAllowed, wrongDigest];
  server = createAgentServer({
    tls,
    proxy: {} as EncryptionProxy,
    secrets: { attested: true },
    aiCode,
    measurementHex: 'aa'.repeat(48),
    agentApi: new AgentApi({ aiCode, manifest: source, log: logs.log, measurementHex: 'aa'.repeat(48) }),
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  url = `https://127.0.0.1:${port}`;
  agent = new Agent({ connect: { ca: pki.caPem } });
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await agent?.close();
  await sample?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}, body?: string) {
  const res = await request(`${url}${path}`, { method, headers, body, dispatcher: agent });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

const sign = (method: string, path: string, over: Partial<Parameters<typeof signAgentRequest>[0]> = {}) =>
  signAgentRequest({ privateKey: owner.privateKey, ownerId: 'owner-a', method, path, manifestHead: head, ...over });

async function signed(method: 'GET' | 'POST', path: string) {
  return call(method, path, await sign(method, path));
}

describe('authentication', () => {
  it('refuses unsigned requests on every route', async () => {
    for (const [m, p] of [['GET', '/agent/v1/ai-code'], ['GET', `/agent/v1/ai-code/${SAMPLE}`], ['POST', `/agent/v1/ai-code/${SAMPLE}/stop`], ['POST', `/agent/v1/ai-code/${SAMPLE}/start`]] as const) {
      const r = await call(m, p);
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_INVALID');
    }
    expect(sample.state).toBe('running');
  });

  it('lists and inspects for a signed owner request', async () => {
    const list = await signed('GET', '/agent/v1/ai-code');
    expect(list.status).toBe(200);
    expect(list.body.measurement).toBe('aa'.repeat(48));
    expect(list.body.aiCode.map((a: any) => [a.name, a.state, a.allowed])).toEqual([
      [SAMPLE, 'running', true],
      ['not-allowed', 'stopped', false],
      ['wrong-digest', 'stopped', true],
    ]);
    const one = await signed('GET', `/agent/v1/ai-code/${SAMPLE}`);
    expect(one.body.aiCode).toMatchObject({ name: SAMPLE, state: 'running', imageKind: 'directory', imageDigest: sampleEntry().imageDigest, restarts: 0 });
  });

  it('refuses a key that is not the named owner\'s, and an id that is no owner', async () => {
    const forged = await signAgentRequest({ privateKey: stranger.privateKey, ownerId: 'owner-a', method: 'GET', path: '/agent/v1/ai-code', manifestHead: head });
    expect(await call('GET', '/agent/v1/ai-code', forged)).toMatchObject({ status: 403, body: { error: { code: 'ERR_SIGNATURE_INVALID' } } });
    const intruder = await signAgentRequest({ privateKey: stranger.privateKey, ownerId: 'intruder', method: 'GET', path: '/agent/v1/ai-code', manifestHead: head });
    expect(await call('GET', '/agent/v1/ai-code', intruder)).toMatchObject({ status: 403, body: { error: { code: 'ERR_POLICY_VIOLATION' } } });
  });

  it('refuses a replayed request (same nonce)', async () => {
    const headers = await sign('GET', '/agent/v1/ai-code');
    expect((await call('GET', '/agent/v1/ai-code', headers)).status).toBe(200);
    expect(await call('GET', '/agent/v1/ai-code', headers)).toMatchObject({ status: 409, body: { error: { code: 'ERR_REPLAY' } } });
  });

  it('refuses a stale or future timestamp', async () => {
    for (const skew of [-10 * 60_000, 10 * 60_000]) {
      const headers = await sign('GET', '/agent/v1/ai-code', { timestamp: Date.now() + skew });
      expect(await call('GET', '/agent/v1/ai-code', headers)).toMatchObject({ status: 403, body: { error: { code: 'ERR_EXPIRED' } } });
    }
  });

  it('refuses a signature made for another method or path', async () => {
    const headers = await sign('GET', `/agent/v1/ai-code/${SAMPLE}`);
    expect(await call('POST', `/agent/v1/ai-code/${SAMPLE}/stop`, headers)).toMatchObject({ status: 403, body: { error: { code: 'ERR_SIGNATURE_INVALID' } } });
    expect(sample.state).toBe('running');
  });

  it('refuses a request signed against another manifest head (after asking for the current manifest again)', async () => {
    const before = source.refreshes;
    const headers = await sign('GET', '/agent/v1/ai-code', { manifestHead: randomBytes(32) });
    expect(await call('GET', '/agent/v1/ai-code', headers)).toMatchObject({ status: 403, body: { error: { code: 'ERR_VALUE_MISMATCH' } } });
    expect(source.refreshes).toBe(before + 1);
  });

  it('refuses a request with a body (nothing in it would be signed)', async () => {
    const headers = await sign('POST', `/agent/v1/ai-code/${SAMPLE}/stop`);
    expect(await call('POST', `/agent/v1/ai-code/${SAMPLE}/stop`, { ...headers, 'content-type': 'application/json' }, '{"force":true}')).toMatchObject({ status: 400, body: { error: { code: 'ERR_USAGE' } } });
    expect(sample.state).toBe('running');
  });
});

describe('start and stop', () => {
  it('stops and starts the AI code for a signed owner', async () => {
    const stopped = await signed('POST', `/agent/v1/ai-code/${SAMPLE}/stop`);
    expect(stopped).toMatchObject({ status: 200, body: { aiCode: { name: SAMPLE, state: 'stopped' } } });
    expect(sample.socketPath).toBeUndefined();
    const health = await request(`${url}/healthz`, { dispatcher: agent });
    expect(health.statusCode).toBe(503);
    await health.body.dump();
    const started = await signed('POST', `/agent/v1/ai-code/${SAMPLE}/start`);
    expect(started).toMatchObject({ status: 200, body: { aiCode: { name: SAMPLE, state: 'running', allowed: true } } });
    expect(sample.socketPath).toBeDefined();
  }, 60_000);

  it('refuses to start AI code the manifest does not name: it never reaches a sandbox', async () => {
    const r = await signed('POST', '/agent/v1/ai-code/not-allowed/start');
    expect(r).toMatchObject({ status: 403, body: { error: { code: 'ERR_MEASUREMENT_NOT_ALLOWED' } } });
    expect(notAllowed.state).toBe('stopped');
  });

  it('refuses to start AI code whose image is not the digest the manifest allows', async () => {
    const r = await signed('POST', '/agent/v1/ai-code/wrong-digest/start');
    expect(r).toMatchObject({ status: 403, body: { error: { code: 'ERR_MEASUREMENT_NOT_ALLOWED' } } });
    expect(wrongDigest.info()).toMatchObject({ state: 'refused', lastError: 'ERR_MEASUREMENT_NOT_ALLOWED' });
  });

  it('answers 404 for AI code this worker does not run', async () => {
    expect((await signed('POST', '/agent/v1/ai-code/elsewhere/start')).status).toBe(404);
  });

  it('logs every request as metadata only', () => {
    const lines = logs.events.filter((e) => e.event === 'agent-request');
    expect(lines.length).toBeGreaterThanOrEqual(15);
    for (const l of lines) for (const k of Object.keys(l)) expect(['event', 'action', 'name', 'owner', 'outcome', 'ms']).toContain(k);
    expect(lines.some((l) => l.action === 'stop' && l.owner === 'owner-a' && l.outcome === 'ok')).toBe(true);
    expect(lines.some((l) => l.outcome === 'ERR_REPLAY')).toBe(true);
  });
});
