/**
 * `obscura verify-evidence` as a user runs it: a real `node bin/obscura.mjs` process per call, on the
 * real vectors in test/vectors and on tampered copies of them. Spawning node + tsx costs about a
 * second, so checks are grouped and run concurrently.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'obscura.mjs');
const V = join(ROOT, 'test', 'vectors');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

// Each call is about a second of CPU (node + tsx + the CLI's imports): run no more than the cores allow.
const MAX_PROCESSES = Math.max(2, availableParallelism());
let running = 0;
const waiting: (() => void)[] = [];

async function obscura(args: readonly string[]): Promise<Result> {
  if (running >= MAX_PROCESSES) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await spawnObscura(args);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function spawnObscura(args: readonly string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'verify-evidence', ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const all = (calls: readonly (readonly string[])[]) => Promise.all(calls.map(obscura));

/** The exit code, with stderr in the failure message so a wrong code explains itself. */
const codeOf = (r: Result) => ({ code: r.code, stderr: r.stderr.trim() });

const snp = (product: 'milan' | 'genoa', over: Partial<Record<'report' | 'vcek' | 'roots', string>> = {}) => [
  'sev-snp',
  '--report',
  over.report ?? join(V, 'sev-snp', product, 'report.bin'),
  '--vcek',
  over.vcek ?? join(V, 'sev-snp', product, 'vcek.der'),
  '--roots',
  over.roots ?? join(V, 'sev-snp', product, 'ask_ark.pem'),
];

const T = join(V, 'tdx', 'spr-e4');
const TDX_AT = '2023-07-01T00:00:00Z';
const tdx = (over: Partial<Record<'quote' | 'roots', string>> = {}) => [
  'tdx',
  '--quote',
  over.quote ?? join(T, 'quote.dat'),
  '--tcb-info',
  join(T, 'tcb_info.json'),
  '--tcb-info-chain',
  join(T, 'tcb_info_issuer_chain.pem'),
  '--qe-identity',
  join(T, 'qe_identity.json'),
  '--qe-identity-chain',
  join(T, 'qe_identity_issuer_chain.pem'),
  '--pck-crl',
  join(T, 'pck_crl.der'),
  '--pck-crl-chain',
  join(T, 'pck_crl_issuer_chain.pem'),
  '--root-crl',
  join(T, 'root_crl.der'),
  '--roots',
  over.roots ?? join(V, 'tdx', 'intel_sgx_root_ca.pem'),
];

const gpu = (name: 'h100-a' | 'h100-b', over: Partial<Record<'evidence' | 'roots', string>> = {}) => [
  'nvidia-gpu',
  '--evidence',
  over.evidence ?? join(V, 'nvidia', name, 'report.hex'),
  '--chain',
  join(V, 'nvidia', name, 'cert_chain.pem'),
  '--roots',
  over.roots ?? join(V, 'nvidia', 'nvidia_device_root.pem'),
];

const NONCE_A = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb';
const NONCE_B = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
const MILAN_MEASUREMENT = 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';

let dir: string;
const tmp = (name: string) => join(dir, name);

async function flippedCopy(source: string, name: string, offset: number, mask = 0x01): Promise<string> {
  const bytes = new Uint8Array(await readFile(source));
  bytes[offset < 0 ? bytes.length + offset : offset] ^= mask;
  await writeFile(tmp(name), bytes);
  return tmp(name);
}

/** A copy of a hex file with one hex digit changed at `digit` (from the end when negative). */
async function flippedHexCopy(source: string, name: string, digit: number): Promise<string> {
  const hex = (await readFile(source, 'utf8')).trim();
  const at = digit < 0 ? hex.length + digit : digit;
  const changed = hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);
  await writeFile(tmp(name), changed);
  return tmp(name);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-verify-evidence-'));
  const milan = join(V, 'sev-snp', 'milan', 'report.bin');
  await Promise.all([
    flippedCopy(milan, 'milan-body.bin', 0x90), // MEASUREMENT[0]
    flippedCopy(milan, 'milan-sig.bin', 0x2a0), // signature r, lowest byte
    flippedCopy(milan, 'milan-version.bin', 0x00, 0x08), // version 2 -> 10
    writeFile(tmp('milan-short.bin'), (await readFile(milan)).subarray(0, 1000)),
    flippedCopy(join(T, 'quote.dat'), 'quote-body.dat', 0x3c), // TD quote body
    flippedCopy(join(T, 'quote.dat'), 'quote-version.dat', 0x00, 0x08), // version 4 -> 12
    flippedHexCopy(join(V, 'nvidia', 'h100-a', 'report.hex'), 'a-sig.hex', -10), // inside the signature
    flippedHexCopy(join(V, 'nvidia', 'h100-a', 'report.hex'), 'a-nonce.hex', 8), // inside the request nonce
    flippedHexCopy(join(V, 'nvidia', 'h100-a', 'report.hex'), 'a-version.hex', 1), // SPDM version 0x11 -> 0x10
    writeFile(tmp('a-odd.hex'), 'abc'),
    writeFile(
      tmp('milan-production.json'),
      JSON.stringify({ measurements: [MILAN_MEASUREMENT], allowDebug: false, minTcb: { bootloader: 2, tee: 0, snp: 5, microcode: 68 } }),
    ),
    writeFile(tmp('milan-debug-ok.json'), JSON.stringify({ measurements: [MILAN_MEASUREMENT], allowDebug: true })),
    writeFile(tmp('milan-tcb-high.json'), JSON.stringify({ measurements: [MILAN_MEASUREMENT], allowDebug: true, minTcb: { bootloader: 2, tee: 0, snp: 6, microcode: 68 } })),
    writeFile(tmp('snp-unknown-field.json'), JSON.stringify({ measurements: [MILAN_MEASUREMENT], allowDebugg: true })),
    writeFile(tmp('not-json.json'), '{ measurements: '),
    writeFile(tmp('tdx-default.json'), '{}'),
    writeFile(tmp('gpu-any.json'), JSON.stringify({ measurements: {}, allowUnlistedIndices: true, minDriverVersion: '550' })),
    writeFile(tmp('gpu-wrong.json'), JSON.stringify({ measurements: { '3': ['00'.repeat(48)] }, allowUnlistedIndices: true })),
  ]);
}, 30_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.concurrent('obscura verify-evidence', () => {
  it('verifies every real vector (exit 0) and reports its facts as one JSON object', async () => {
    const [milan, genoa, tdxOut, a, b] = await all([
      [...snp('milan'), '--json'],
      [...snp('genoa'), '--json'],
      [...tdx(), '--at', TDX_AT, '--json'],
      [...gpu('h100-a'), '--json'],
      [...gpu('h100-b'), '--nonce', NONCE_B.toUpperCase(), '--json'],
    ]);
    for (const r of [milan, genoa, tdxOut, a, b]) {
      expect(codeOf(r)).toEqual({ code: 0, stderr: '' });
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
    }
    const m = JSON.parse(milan.stdout);
    expect(m.version).toBe(2);
    expect(m.reportData).toBe(`0102030405${'00'.repeat(59)}`);
    expect(m.reportedTcb).toMatchObject({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(m.policy).toMatchObject({ debug: true, raw: '0xb0000' });
    expect(m.chipId).toMatch(/^[0-9a-f]{128}$/);
    expect(m.measurement).toBe(MILAN_MEASUREMENT);
    expect(m.validated).toBe(false);

    const g = JSON.parse(genoa.stdout);
    expect(g.version).toBe(3);
    expect(g.measurement).toMatch(/^09ef32ac[0-9a-f]{88}$/);
    expect(g.policy.debug).toBe(false);
    expect(g.endorsementKey.serialNumberHex).toBe('00');

    const t = JSON.parse(tdxOut.stdout);
    expect(t.at).toBe('2023-07-01T00:00:00.000Z');
    expect(t.mrTd).toMatch(/^6363b804[0-9a-f]{88}$/);
    expect(t.rtmrs).toHaveLength(4);
    expect(t.mrSeam).toMatch(/^[0-9a-f]{96}$/);
    expect(t.reportData).toMatch(/^[0-9a-f]{128}$/);
    expect(typeof t.tcbStatus).toBe('string');
    expect(t.debug).toBe(false);

    const ja = JSON.parse(a.stdout);
    expect(ja.nonce).toBe(NONCE_A);
    expect(Object.keys(ja.measurements)).toHaveLength(64);
    expect(ja.measurements['3']).toMatch(/^164f445c/);
    expect(ja.nonceChecked).toBe(false);
    const jb = JSON.parse(b.stdout);
    expect(jb.nonce).toBe(NONCE_B);
    expect(jb.nonceChecked).toBe(true);
  });

  it('prints a human summary without --json, and usage with --help', async () => {
    const [milan, help] = await all([snp('milan'), ['--help']]);
    expect(milan.code).toBe(0);
    expect(milan.stdout).toMatch(/SEV-SNP report verified/);
    expect(milan.stdout).toMatch(/bl=2 tee=0 snp=5 ucode=68/);
    expect(milan.stdout).toMatch(/DEBUG/);
    expect(() => JSON.parse(milan.stdout)).toThrow();
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/obscura verify-evidence sev-snp --report FILE/);
  });

  it('validates against --policy: Milan (DEBUG set) passes a debug-allowing policy, fails a production one (exit 5)', async () => {
    const [ok, production, tcbHigh, tdxDefault, gpuOk, gpuWrong] = await all([
      [...snp('milan'), '--policy', tmp('milan-debug-ok.json'), '--json'],
      [...snp('milan'), '--policy', tmp('milan-production.json')],
      [...snp('milan'), '--policy', tmp('milan-tcb-high.json')],
      [...tdx(), '--at', TDX_AT, '--policy', tmp('tdx-default.json')],
      [...gpu('h100-a'), '--policy', tmp('gpu-any.json'), '--json'],
      [...gpu('h100-a'), '--policy', tmp('gpu-wrong.json')],
    ]);
    expect(codeOf(ok)).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(ok.stdout).validated).toBe(true);
    expect(production.code).toBe(5);
    expect(production.stderr).toMatch(/validate step failed: .*DEBUG.*\(ERR_POLICY_VIOLATION\)/);
    expect(production.stdout).toBe('');
    expect(tcbHigh.code).toBe(5);
    expect(tcbHigh.stderr).toMatch(/validate step failed: .*snp 5 < 6/);
    // The vector's TCB status is not UpToDate (the default policy's only accepted status).
    expect(tdxDefault.code).toBe(5);
    expect(tdxDefault.stderr).toMatch(/validate step failed: .*TCB status.*\(ERR_POLICY_VIOLATION\)/);
    expect(codeOf(gpuOk)).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(gpuOk.stdout).validated).toBe(true);
    expect(gpuWrong.code).toBe(5);
    expect(gpuWrong.stderr).toMatch(/validate step failed: .*measurement index 3.*\(ERR_MEASUREMENT_NOT_ALLOWED\)/);
  });

  it('refuses tampered SEV-SNP reports: body or signature (3), version or length (2)', async () => {
    const results = await all([
      snp('milan', { report: tmp('milan-body.bin') }),
      snp('milan', { report: tmp('milan-sig.bin') }),
      snp('milan', { report: tmp('milan-version.bin') }),
      snp('milan', { report: tmp('milan-short.bin') }),
    ]);
    expect(results.map((r) => r.code)).toEqual([3, 3, 2, 2]);
    expect(results[0].stderr).toMatch(/verify step failed: .*\(ERR_SIGNATURE_INVALID\)/);
    expect(results[2].stderr).toMatch(/parse step failed: .*\(ERR_UNSUPPORTED_VERSION\)/);
    expect(results[3].stderr).toMatch(/parse step failed: .*\(ERR_MALFORMED\)/);
  });

  it('refuses a tampered TDX quote (3) and an unsupported quote version (2)', async () => {
    const [body, version] = await all([
      [...tdx({ quote: tmp('quote-body.dat') }), '--at', TDX_AT],
      [...tdx({ quote: tmp('quote-version.dat') }), '--at', TDX_AT],
    ]);
    expect(codeOf(body).code).toBe(3);
    expect(body.stderr).toMatch(/verify step failed: .*\(ERR_SIGNATURE_INVALID\)/);
    expect(codeOf(version).code).toBe(2);
    expect(version.stderr).toMatch(/parse step failed/);
  });

  it('refuses tampered NVIDIA evidence: signature or nonce (3), SPDM version or bad hex (2)', async () => {
    const results = await all([
      gpu('h100-a', { evidence: tmp('a-sig.hex') }),
      gpu('h100-a', { evidence: tmp('a-nonce.hex') }),
      gpu('h100-a', { evidence: tmp('a-version.hex') }),
      gpu('h100-a', { evidence: tmp('a-odd.hex') }),
    ]);
    expect(results.map((r) => r.code)).toEqual([3, 3, 2, 2]);
    expect(results[0].stderr).toMatch(/verify step failed: .*\(ERR_SIGNATURE_INVALID\)/);
  });

  it('refuses evidence checked against the wrong roots (exit 3)', async () => {
    const results = await all([
      snp('milan', { roots: join(V, 'sev-snp', 'genoa', 'ask_ark.pem') }),
      [...tdx({ roots: join(V, 'nvidia', 'nvidia_device_root.pem') }), '--at', TDX_AT],
      gpu('h100-a', { roots: join(V, 'tdx', 'intel_sgx_root_ca.pem') }),
    ]);
    for (const r of results) {
      expect(codeOf(r).code).toBe(3);
      expect(r.stderr).toMatch(/verify step failed: .*\(ERR_(UNTRUSTED_ROOT|CHAIN_INVALID)\)/);
    }
  });

  it('refuses a time outside the validity windows (exit 4)', async () => {
    const results = await all([
      [...snp('milan'), '--at', '2000-01-01'],
      [...tdx(), '--at', '2030-01-01T00:00:00Z'],
    ]);
    for (const r of results) expect(codeOf(r).code).toBe(4);
    expect(results[0].stderr).toMatch(/verify step failed: .*\(ERR_NOT_YET_VALID\)/);
    expect(results[1].stderr).toMatch(/verify step failed: .*\(ERR_EXPIRED\)/);
  });

  it('refuses a nonce the evidence does not carry (exit 5)', async () => {
    const [wrong] = await all([[...gpu('h100-a'), '--nonce', NONCE_B]]);
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toMatch(/verify step failed: .*nonce.*\(ERR_VALUE_MISMATCH\)/);
  });

  it('exits 1 on usage errors and 2 on unreadable or unparseable input files', async () => {
    const [badKind, missing, unknownFlag, badAt, badNonce, unknownPolicyField, noFile, notJson] = await all([
      ['sgx'],
      ['sev-snp', '--report', join(V, 'sev-snp', 'milan', 'report.bin')],
      [...snp('milan'), '--frobnicate'],
      [...snp('milan'), '--at', 'yesterday'],
      [...gpu('h100-a'), '--nonce', 'abcd'],
      [...snp('milan'), '--policy', tmp('snp-unknown-field.json')],
      snp('milan', { vcek: tmp('does-not-exist.der') }),
      [...snp('milan'), '--policy', tmp('not-json.json')],
    ]);
    for (const r of [badKind, missing, unknownFlag, badAt, badNonce, unknownPolicyField]) {
      expect(codeOf(r).code).toBe(1);
      expect(r.stdout).toBe('');
    }
    expect(missing.stderr).toMatch(/--vcek FILE, --roots FILE/);
    expect(unknownPolicyField.stderr).toMatch(/parse step failed: .*allowDebugg.*\(ERR_USAGE\)/);
    expect(codeOf(noFile).code).toBe(2);
    expect(noFile.stderr).toMatch(/parse step failed: cannot read --vcek .*ENOENT \(ERR_MALFORMED\)/);
    expect(codeOf(notJson).code).toBe(2);
  });
});
