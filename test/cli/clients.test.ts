/**
 * The user-side commands as real processes (`node bin/obscura.mjs ...`) against one system started as
 * `npm start` starts it: `obscura verify`, `obscura secret rotate` and `obscura chat`, their --json
 * output, step lines, exit statuses and --help.
 */
import { spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../client/cli/exit-codes.ts';
import { PROJECT_ROOT } from '../../worker-os/image-digest.ts';
import { freePort, startSystem, type RunningSystem } from '../e2e/harness.ts';

const CANARY = `canary-${randomBytes(12).toString('hex')}`;
let system: RunningSystem;
let policy: { service: { measurements: string[]; trustedRoots: string[] } };

beforeAll(async () => {
  system = await startSystem();
  policy = JSON.parse(readFileSync(join(system.stateDir, 'client-policy.json'), 'utf8'));
});

afterAll(async () => {
  if (system) expect(await system.stop('SIGINT')).toBe(0);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function obscura(args: string[], opts: { stdin?: string; endpoint?: boolean } = {}): Promise<Run> {
  const full = opts.endpoint === false ? args : [...args, '--endpoint', system.edgeUrl, '--state-dir', system.stateDir];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'obscura.mjs'), ...full], { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

const json = (r: Run) => JSON.parse(r.stdout) as Record<string, any>;

describe('obscura verify', () => {
  it('verifies the endpoint against the client policy and shows what it verified (--json)', async () => {
    const r = await obscura(['verify', '--json']);
    expect(r.code, r.stderr).toBe(EXIT.OK);
    const out = json(r);
    expect(out.ok).toBe(true);
    expect(out.platform).toBe('sev-snp');
    expect(out.report.debug).toBe(false);
    expect(out.measurement).toBe(policy.service.measurements[0]);
    expect(out.vendorRoot.fingerprintSha256).toBe(new X509Certificate(policy.service.trustedRoots[0]).fingerprint256.replace(/:/g, '').toLowerCase());
    expect(out.manifest.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(out.manifest.entries).toBeGreaterThanOrEqual(1);
    expect(out.manifest.head).toMatch(/^[0-9a-f]{64}$/);
    expect(out.manifest.models).toContain('sample-ngram');
    expect(out.bundle.nonce).toBe(false);
    expect(out.bundle.ageMs).toBeGreaterThanOrEqual(0);
    expect(out.hpke.chosen).toMatch(/^X-Wing/);
    expect(out.manifestLog.path).toBe(join(system.stateDir, 'client', 'manifest-log.json'));
    expect(r.stderr).toMatch(/\[obscura\] fetching the attestation bundle/);
  });

  it('asks for fresh evidence with --nonce, and prints a readable summary without --json', async () => {
    const fresh = await obscura(['verify', '--nonce', '--json']);
    expect(fresh.code, fresh.stderr).toBe(EXIT.OK);
    expect(json(fresh).bundle.nonce).toBe(true);
    // The client proxy of `up` recorded the head first; verify checks it extends that.
    expect(json(fresh).manifestLog.continuity).toMatch(/same head|extends/);
    const text = await obscura(['verify']);
    expect(text.code, text.stderr).toBe(EXIT.OK);
    expect(text.stdout).toMatch(/^verified https:\/\/127\.0\.0\.1:\d+ against /);
    expect(text.stdout).toContain(policy.service.measurements[0].slice(0, 8));
    expect(text.stdout).toContain(new X509Certificate(policy.service.trustedRoots[0]).fingerprint256);
    expect(text.stdout).toMatch(/manifest history\s+\d+ entr/);
  });

  it('refuses a service whose measurement the policy does not allow (exit 5)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'obscura-cli-policy-'));
    const other = { ...policy, service: { ...policy.service, measurements: ['ab'.repeat(48)] } };
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(other));
    const r = await obscura(['verify', '--policy', join(dir, 'policy.json')]);
    expect(r.code).toBe(EXIT.MISMATCH);
    expect(r.stderr).toMatch(/measurement/i);
    expect(r.stdout).toBe('');
  });

  it('says an unreachable endpoint is unavailable (exit 7), and a missing --endpoint is usage (exit 1)', async () => {
    const port = await freePort();
    const down = await obscura(['verify', '--endpoint', `https://127.0.0.1:${port}`, '--state-dir', system.stateDir], { endpoint: false });
    expect(down.code).toBe(EXIT.UNAVAILABLE);
    expect(down.stderr).toMatch(/cannot reach/);
    const none = await obscura(['verify', '--state-dir', system.stateDir], { endpoint: false });
    expect(none.code).toBe(EXIT.USAGE);
    expect(none.stderr).toMatch(/--endpoint/);
  });
});

describe('obscura secret rotate', () => {
  it('exchanges a new inference secret each time, shows its id and expiry, and checks a worker can use it', async () => {
    const a = await obscura(['secret', 'rotate', '--json']);
    expect(a.code, a.stderr).toBe(EXIT.OK);
    const b = await obscura(['secret', 'rotate', '--json']);
    expect(b.code, b.stderr).toBe(EXIT.OK);
    const [x, y] = [json(a), json(b)];
    expect(x.secretId).toMatch(/^[0-9a-f]{32}$/);
    expect(y.secretId).not.toBe(x.secretId);
    expect(x.expiresAt).toBeGreaterThan(Date.now() + 60_000);
    expect(x.checked.models).toContain('sample-ngram');
    expect(a.stderr).toMatch(/exchanging a new inference secret/);
    const text = await obscura(['secret', 'rotate']);
    expect(text.code, text.stderr).toBe(EXIT.OK);
    expect(text.stdout).toMatch(/^new inference secret [0-9a-f]{32}\n\s+expires\s+\d{4}-/);
    const bad = await obscura(['secret', 'spin']);
    expect(bad.code).toBe(EXIT.USAGE);
  });
});

describe('obscura chat', () => {
  it('streams one sealed chat completion to stdout', async () => {
    const r = await obscura(['chat', '--max-tokens', '12', `Tell me about the white rabbit ${CANARY}`]);
    expect(r.code, r.stderr).toBe(EXIT.OK);
    expect(r.stdout.trim().split(/\s+/).length).toBeGreaterThan(5);
    expect(r.stdout).not.toContain(CANARY);
    expect(r.stderr).toMatch(/\[obscura\] verified: service measurement [0-9a-f]{16}/);
    expect(r.stderr).toMatch(/\[obscura\] done: 12 tokens/);
  });

  it('reads the prompt from stdin with -, and reports one JSON object with --json', async () => {
    const r = await obscura(['chat', '--model', 'sample-ngram', '--max-tokens', '9', '--json', '-'], { stdin: `It was the best of times ${CANARY}\n` });
    expect(r.code, r.stderr).toBe(EXIT.OK);
    const out = json(r);
    expect(out.model).toBe('sample-ngram');
    expect(out.usage.completion_tokens).toBe(9);
    expect(out.content.length).toBeGreaterThan(5);
    expect(out.content).not.toContain(CANARY);
  });

  it('fails with a usage status without a prompt or for an unknown model', async () => {
    const none = await obscura(['chat']);
    expect(none.code).toBe(EXIT.USAGE);
    const unknown = await obscura(['chat', '--model', 'no-such-model', 'hello']);
    expect(unknown.code).toBe(EXIT.USAGE);
    expect(unknown.stderr).toMatch(/no-such-model|model/);
  });
});

describe('--help', () => {
  it('every new command has usage text, and obscura --help lists them', async () => {
    for (const cmd of [['verify'], ['secret'], ['chat']]) {
      const r = await obscura([...cmd, '--help'], { endpoint: false });
      expect(r.code).toBe(EXIT.OK);
      expect(r.stdout).toMatch(new RegExp(`^obscura ${cmd[0]} `));
      expect(r.stdout).toContain('--json');
    }
    const all = await obscura(['--help'], { endpoint: false });
    for (const name of ['verify', 'secret', 'chat']) expect(all.stdout).toMatch(new RegExp(`\\n  ${name}\\s`));
  });
});
