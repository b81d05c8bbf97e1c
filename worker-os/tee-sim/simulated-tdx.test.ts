/**
 * The simulated TDX machine through the real TDX verifier (shared/attestation/tdx): accepted only under
 * its own local root, with the facts it was asked to quote, the TCB status its collateral states, and
 * Intel's windows; its chain persisted per machine without the root's private key.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../shared/bytes.ts';
import { ObscuraError } from '../../shared/errors.ts';
import { verifyTdxEvidence, type TdxPolicy } from '../../shared/attestation/tdx/index.ts';
import type { TdxEvidence } from '../../shared/attestation/evidence.ts';
import { parseCertificate } from '../../shared/attestation/x509/index.ts';
import { SIM_TDX_COLLATERAL_VALIDITY_MS, SIM_TDX_ROOT_PEM_FILE, SIM_TDX_STATE_FILE, SimulatedTdxTee, openSimulatedTdxTee } from './index.ts';

const INTEL_ROOT = readFileSync(new URL('../../test/vectors/tdx/intel_sgx_root_ca.pem', import.meta.url), 'utf8');
const mrTd = randomBytes(48);
const reportData = randomBytes(64);
let dir: string;
let tee: SimulatedTdxTee;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'obscura-tdx-sim-'));
  tee = await openSimulatedTdxTee({ dir: join(dir, 'machine') });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e) => (e instanceof ObscuraError ? e.code : String(e)));
const verify = (e: TdxEvidence, opts: { roots?: string[]; at?: Date; policy?: TdxPolicy } = {}) =>
  verifyTdxEvidence({ quote: e.quote, collateral: e.collateral, trustedRoots: opts.roots ?? [tee.rootPem], at: opts.at ?? new Date(), policy: opts.policy });

describe('the simulated TDX machine', () => {
  it('persists its chain privately, without the root\'s private key, and reuses it', async () => {
    const machine = join(dir, 'machine');
    expect((await stat(join(machine, SIM_TDX_STATE_FILE))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(machine, SIM_TDX_ROOT_PEM_FILE), 'utf8')).toBe(tee.rootPem);
    const state = JSON.parse(await readFile(join(machine, SIM_TDX_STATE_FILE), 'utf8'));
    expect(Object.keys(state.keys).sort()).toEqual(['attestation', 'pckCa', 'pckLeaf', 'tcbSigning']);
    const again = await openSimulatedTdxTee({ dir: machine });
    expect(again.rootDer).toEqual(tee.rootDer);
    expect(again.ppid).toEqual(tee.ppid);
    const other = await openSimulatedTdxTee({ dir: join(dir, 'other') });
    expect(other.rootDer).not.toEqual(tee.rootDer);
    expect(other.ppid).not.toEqual(tee.ppid);
    expect(parseCertificate(tee.rootDer).subject).toMatch(/CN=Intel SGX Root CA.*not Intel/);
  });

  it('quotes what it is asked to, verified under its own root with the status UpToDate', async () => {
    const facts = await verify(await tee.evidence({ reportData, mrTd }), { policy: { mrTd: toHex(mrTd), reportData: toHex(reportData) } });
    expect(facts).toMatchObject({ platform: 'tdx', quoteVersion: 4, mrTd: toHex(mrTd), reportData: toHex(reportData), tcbStatus: 'UpToDate', advisoryIds: [] });
    expect(facts.tdAttributes).toBe('0000001000000000');
    expect(facts.teeTcbSvn).toBe('03010200000000000000000000000000');
  });

  it('is refused under Intel\'s real root, and Intel\'s root is not what it chains to', async () => {
    const e = await tee.evidence({ reportData, mrTd });
    expect(await codeOf(verify(e, { roots: [INTEL_ROOT] }))).toBe('ERR_UNTRUSTED_ROOT');
    const other = await openSimulatedTdxTee({ dir: join(dir, 'other') });
    expect(await codeOf(verify(e, { roots: [other.rootPem] }))).toBe('ERR_UNTRUSTED_ROOT');
  });

  it('ships collateral stating the TCB status it was opened with, and Intel\'s 30-day windows', async () => {
    const stale = await openSimulatedTdxTee({ dir: join(dir, 'machine'), platformStatus: 'OutOfDate' });
    const e = await stale.evidence({ reportData, mrTd });
    expect(await codeOf(verify(e))).toBe('ERR_POLICY_VIOLATION');
    const facts = await verify(e, { policy: { acceptedTcbStatuses: ['UpToDate', 'OutOfDate'] } });
    expect(facts.tcbStatus).toBe('OutOfDate');
    expect(facts.advisoryIds).toEqual(['INTEL-SA-00960']);
    const needsHardening = await openSimulatedTdxTee({ dir: join(dir, 'machine'), platformStatus: 'SWHardeningNeeded' });
    expect((await verify(await needsHardening.evidence({ reportData, mrTd }), { policy: { acceptedTcbStatuses: ['SWHardeningNeeded'] } })).tcbStatus).toBe('SWHardeningNeeded');
    const revoked = await openSimulatedTdxTee({ dir: join(dir, 'machine'), platformStatus: 'Revoked' });
    expect(await codeOf(verify(await revoked.evidence({ reportData, mrTd })))).toBe('ERR_REVOKED');
    const fresh = await tee.evidence({ reportData, mrTd });
    expect(await codeOf(verify(fresh, { at: new Date(Date.now() + SIM_TDX_COLLATERAL_VALIDITY_MS + 60_000) }))).toBe('ERR_EXPIRED');
    expect(await codeOf(verify(fresh, { at: new Date(Date.now() - 2 * 24 * 3600_000) }))).toBe('ERR_NOT_YET_VALID');
  });

  it('sets TD_ATTRIBUTES.DEBUG when asked, which the default policy refuses', async () => {
    const e = await tee.evidence({ reportData, mrTd, debug: true });
    expect(await codeOf(verify(e))).toBe('ERR_POLICY_VIOLATION');
    expect((await verify(e, { policy: { allowDebug: true } })).tdAttributes).toBe('0100001000000000');
  });

  it('refuses request fields of the wrong size', async () => {
    expect(await codeOf(tee.evidence({ reportData: randomBytes(32), mrTd }))).toBe('ERR_USAGE');
    expect(await codeOf(tee.evidence({ reportData, mrTd: randomBytes(32) }))).toBe('ERR_USAGE');
  });
});
