/**
 * End to end on evidence from a stand-in Intel PKI (testkit.ts): the real vector's header and TD body,
 * re-signed, so every step passes and each TCB path, revocation and policy outcome can be reached.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import { toHex } from '../../bytes.ts';
import { verifyTdxEvidence } from './evidence.ts';
import type { TdxPolicy } from './policy.ts';
import { parseQuote, type TdxQuote } from './quote.ts';
import {
  DEFAULT_SGX_COMPONENTS,
  defaultQeIdentity,
  defaultTcbInfo,
  makeEvidence,
  makeKeys,
  tcbLevel,
  type EvidenceSpec,
  type FakeIntelKeys,
} from './testkit.ts';

const REAL: TdxQuote = parseQuote(new Uint8Array(readFileSync(new URL('../../../test/vectors/tdx/spr-e4/quote.dat', import.meta.url))));
const REAL_MRTD = '6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb';

let keys: FakeIntelKeys;
beforeAll(async () => {
  keys = await makeKeys();
});

type Spec = Omit<EvidenceSpec, 'realQuote'>;

async function verify(spec: Spec = {}, policy?: TdxPolicy, at?: Date) {
  const e = await makeEvidence(keys, { realQuote: REAL, ...spec });
  return verifyTdxEvidence({ quote: e.quote, collateral: e.collateral, trustedRoots: e.trustedRoots, at: at ?? e.at, policy });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
  return 'ok';
}

const ANY_STATUS: TdxPolicy = {
  acceptedTcbStatuses: [
    'UpToDate',
    'SWHardeningNeeded',
    'ConfigurationNeeded',
    'ConfigurationAndSWHardeningNeeded',
    'TDRelaunchAdvised',
    'TDRelaunchAdvisedConfigurationNeeded',
    'OutOfDate',
    'OutOfDateConfigurationNeeded',
  ],
};

/** TEE_TCB_SVN is the body's first 16 bytes. */
const teeTcbSvn = (...svn: number[]) => (body: Uint8Array) => body.set(svn, 0);
const tcbInfoWith = (patch: Record<string, unknown>) => ({ ...defaultTcbInfo(), ...patch });
const qeIdentityWith = (patch: Record<string, unknown>) => ({ ...defaultQeIdentity(), ...patch });
const TDX = (...svn: number[]) => [...svn, ...new Array(16 - svn.length).fill(0)];

describe('verifyTdxEvidence on fully verifying evidence', () => {
  it('returns the facts', async () => {
    const facts = await verify();
    expect(facts).toMatchObject({
      platform: 'tdx',
      quoteVersion: 4,
      mrTd: REAL_MRTD,
      mrSeam: toHex(REAL.body.mrSeam),
      reportData: toHex(REAL.body.reportData),
      tdAttributes: '0000004000000000',
      xfam: 'e71a060000000000',
      teeTcbSvn: '03000400000000000000000000000000',
      tcbStatus: 'UpToDate',
      advisoryIds: [],
      fmspc: '50806f000000',
      tcbEvaluationDataNumber: 17,
    });
    expect(facts.rtmrs).toEqual(REAL.body.rtmrs.map(toHex));
    expect(facts.mrServiceTd).toBeUndefined();
  });

  it('quote v5 with a TDX 1.0 body, and with a TDX 1.5 body', async () => {
    expect(await verify({ version: 5, bodyType: 2 })).toMatchObject({ quoteVersion: 5, mrTd: REAL_MRTD, tcbStatus: 'UpToDate' });
    const v15 = await verify({ version: 5, bodyType: 3 });
    expect(v15.mrServiceTd).toBe('5e'.repeat(48));
  });
});

describe('revocation and validity windows', () => {
  it('a PCK certificate revoked by the PCK CRL', async () => {
    expect(await codeOf(verify({ revokePckLeaf: true }))).toBe('ERR_REVOKED');
  });

  it('a PCK CA revoked by the root CA CRL', async () => {
    expect(await codeOf(verify({ revokePckCa: true }))).toBe('ERR_REVOKED');
  });

  it('a time before the PCK certificate\'s notBefore', async () => {
    expect(await codeOf(verify({ pckLeafNotBefore: new Date('2024-01-20T00:00:00Z') }))).toBe('ERR_NOT_YET_VALID');
  });

  it('collateral past nextUpdate, and before issueDate', async () => {
    expect(await codeOf(verify({}, undefined, new Date('2024-02-02T00:00:00Z')))).toBe('ERR_EXPIRED');
    const late = { issueDate: '2024-01-20T00:00:00Z' };
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith(late) }))).toBe('ERR_NOT_YET_VALID');
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith(late) }))).toBe('ERR_NOT_YET_VALID');
  });
});

describe('TCB status by Intel\'s algorithm', () => {
  it('a lower PCESVN matches the second level: OutOfDate, with its advisories', async () => {
    expect(await codeOf(verify({ pck: { pceSvn: 10 } }))).toBe('ERR_POLICY_VIOLATION'); // default: UpToDate only
    const facts = await verify({ pck: { pceSvn: 10 } }, ANY_STATUS);
    expect(facts.tcbStatus).toBe('OutOfDate');
    expect(facts.advisoryIds).toEqual(['INTEL-SA-00837']);
  });

  it('a lower TDX component (TEE_TCB_SVN[2]) matches the second level; lower still matches none', async () => {
    expect((await verify({ editBody: teeTcbSvn(3, 0, 3) }, ANY_STATUS)).tcbStatus).toBe('OutOfDate');
    expect(await codeOf(verify({ editBody: teeTcbSvn(3, 0, 2) }, ANY_STATUS))).toBe('ERR_VALUE_MISMATCH');
  });

  it('an SGX component below every level matches none', async () => {
    const low = [...DEFAULT_SGX_COMPONENTS];
    low[4] = 2;
    expect(await codeOf(verify({ pck: { components: low } }, ANY_STATUS))).toBe('ERR_VALUE_MISMATCH');
  });

  it('each level status passes through; Revoked is refused outright', async () => {
    for (const status of ['SWHardeningNeeded', 'ConfigurationNeeded', 'ConfigurationAndSWHardeningNeeded', 'OutOfDateConfigurationNeeded']) {
      const info = tcbInfoWith({ tcbLevels: [tcbLevel(status, DEFAULT_SGX_COMPONENTS, 11, TDX(3, 0, 4))] });
      expect((await verify({ tcbInfo: info }, ANY_STATUS)).tcbStatus).toBe(status);
    }
    const revoked = tcbInfoWith({ tcbLevels: [tcbLevel('Revoked', DEFAULT_SGX_COMPONENTS, 11, TDX(3, 0, 4))] });
    expect(await codeOf(verify({ tcbInfo: revoked }, ANY_STATUS))).toBe('ERR_REVOKED');
    const unknown = tcbInfoWith({ tcbLevels: [tcbLevel('Fine', DEFAULT_SGX_COMPONENTS, 11, TDX(3, 0, 4))] });
    expect(await codeOf(verify({ tcbInfo: unknown }, ANY_STATUS))).toBe('ERR_MALFORMED');
  });

  it('the first level in served order that fits wins', async () => {
    const info = tcbInfoWith({
      tcbLevels: [
        tcbLevel('UpToDate', DEFAULT_SGX_COMPONENTS, 12, TDX(3, 0, 4)), // PCESVN 11 does not reach it
        tcbLevel('SWHardeningNeeded', DEFAULT_SGX_COMPONENTS, 11, TDX(3, 0, 4)),
        tcbLevel('OutOfDate', DEFAULT_SGX_COMPONENTS, 1, TDX(0)),
      ],
    });
    expect((await verify({ tcbInfo: info }, ANY_STATUS)).tcbStatus).toBe('SWHardeningNeeded');
  });

  it('an out-of-date QE lowers the status; a revoked QE revokes it; an unknown QE ISVSVN matches nothing', async () => {
    const qeOld = qeIdentityWith({
      tcbLevels: [
        { tcb: { isvsvn: 5 }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus: 'UpToDate' },
        { tcb: { isvsvn: 4 }, tcbDate: '2023-01-01T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00999'] },
      ],
    });
    const facts = await verify({ qeIdentity: qeOld }, ANY_STATUS);
    expect(facts.tcbStatus).toBe('OutOfDate');
    expect(facts.advisoryIds).toEqual(['INTEL-SA-00999']);
    const configNeeded = tcbInfoWith({ tcbLevels: [tcbLevel('ConfigurationNeeded', DEFAULT_SGX_COMPONENTS, 11, TDX(3, 0, 4))] });
    expect((await verify({ qeIdentity: qeOld, tcbInfo: configNeeded }, ANY_STATUS)).tcbStatus).toBe('OutOfDateConfigurationNeeded');
    const qeRevoked = qeIdentityWith({ tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus: 'Revoked' }] });
    expect(await codeOf(verify({ qeIdentity: qeRevoked }, ANY_STATUS))).toBe('ERR_REVOKED');
    const qeNewer = qeIdentityWith({ tcbLevels: [{ tcb: { isvsvn: 5 }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus: 'UpToDate' }] });
    expect(await codeOf(verify({ qeIdentity: qeNewer }, ANY_STATUS))).toBe('ERR_VALUE_MISMATCH');
  });

  it('a QE that is not the identity\'s: MRSIGNER, ISVPRODID, ATTRIBUTES, MISCSELECT under masks', async () => {
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ mrsigner: 'AA'.repeat(32) }) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ isvprodid: 1 }) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ attributes: '15000000000000000000000000000000' }) }))).toBe(
      'ERR_VALUE_MISMATCH',
    );
    // The real QE has ATTRIBUTES 0x15: bit 2 (0x04) is outside the mask, so the identity's 0x11 matches.
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ attributesMask: 'FFFFFFFFFFFFFFFF0000000000000000' }) }))).toBe(
      'ERR_VALUE_MISMATCH',
    );
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ miscselect: '01000000' }) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ qeIdentity: qeIdentityWith({ id: 'QE' }) }))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('TCB info for another platform (FMSPC, PCE ID) or another TEE', async () => {
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith({ fmspc: '00906ED50000' }) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith({ pceId: '0100' }) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith({ id: 'SGX' }) }))).toBe('ERR_UNSUPPORTED_VERSION');
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith({ version: 2 }) }))).toBe('ERR_UNSUPPORTED_VERSION');
  });

  it('a TDX module that is not Intel\'s: MRSIGNERSEAM, SEAMATTRIBUTES', async () => {
    const module = { mrsigner: 'ff'.repeat(48), attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' };
    expect(await codeOf(verify({ tcbInfo: tcbInfoWith({ tdxModule: module }) }))).toBe('ERR_VALUE_MISMATCH');
    const seamAttributesSet = (body: Uint8Array) => (body[112] = 1);
    expect(await codeOf(verify({ editBody: seamAttributesSet }))).toBe('ERR_VALUE_MISMATCH');
  });
});

describe('TDX module identities (TEE_TCB_SVN[1] > 0)', () => {
  const identity = (levels: [number, string][], id = 'TDX_01', mrsigner = '00'.repeat(48)) => ({
    id,
    mrsigner,
    attributes: '0000000000000000',
    attributesMask: 'FFFFFFFFFFFFFFFF',
    tcbLevels: levels.map(([isvsvn, tcbStatus]) => ({ tcb: { isvsvn }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus })),
  });
  // Bytes 0 and 1 of the levels' TDX components are ignored once a module identity applies.
  const levels = [tcbLevel('UpToDate', DEFAULT_SGX_COMPONENTS, 11, TDX(99, 99, 4))];
  const info = (ids: unknown[] | undefined) =>
    tcbInfoWith({ tcbLevels: levels, ...(ids === undefined ? {} : { tdxModuleIdentities: ids }) });

  it('the module\'s own level decides: UpToDate, OutOfDate folded in, Revoked refused', async () => {
    const ids = [identity([[5, 'UpToDate'], [2, 'OutOfDate']])];
    expect((await verify({ editBody: teeTcbSvn(5, 1, 4), tcbInfo: info(ids) })).tcbStatus).toBe('UpToDate');
    expect((await verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(ids) }, ANY_STATUS)).tcbStatus).toBe('OutOfDate');
    expect(await codeOf(verify({ editBody: teeTcbSvn(1, 1, 4), tcbInfo: info(ids) }, ANY_STATUS))).toBe('ERR_VALUE_MISMATCH');
    const revoked = [identity([[2, 'Revoked']])];
    expect(await codeOf(verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(revoked) }, ANY_STATUS))).toBe('ERR_REVOKED');
  });

  it('a module version with no identity, no identities at all, or another signer', async () => {
    const ids = [identity([[1, 'UpToDate']], 'TDX_02')];
    expect(await codeOf(verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(ids) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(undefined) }))).toBe('ERR_VALUE_MISMATCH');
    const other = [identity([[1, 'UpToDate']], 'TDX_01', 'ee'.repeat(48))];
    expect(await codeOf(verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(other) }))).toBe('ERR_VALUE_MISMATCH');
    // Identity ids compare case-insensitively, as in Intel's QVL.
    const lower = [identity([[1, 'UpToDate']], 'tdx_01')];
    expect((await verify({ editBody: teeTcbSvn(3, 1, 4), tcbInfo: info(lower) })).tcbStatus).toBe('UpToDate');
  });

  it('TDX 1.5 reports: TD relaunch advised when TEE_TCB_SVN_2 reaches the latest module level', async () => {
    const ids = [identity([[5, 'UpToDate'], [2, 'OutOfDate']])];
    const body15 = (svn2: number[]) => (body: Uint8Array) => {
      body.set([3, 1, 4], 0);
      body.set(svn2, 584);
    };
    const spec = { version: 5 as const, bodyType: 3 as const, tcbInfo: info(ids) };
    expect((await verify({ ...spec, editBody: body15([5, 1, 4]) }, ANY_STATUS)).tcbStatus).toBe('TDRelaunchAdvised');
    expect((await verify({ ...spec, editBody: body15([4, 1, 4]) }, ANY_STATUS)).tcbStatus).toBe('OutOfDate');
    // A module version in TEE_TCB_SVN_2 with no identity: Intel's "TDX module mismatch".
    expect(await codeOf(verify({ ...spec, editBody: body15([5, 2, 4]) }, ANY_STATUS))).toBe('ERR_VALUE_MISMATCH');
    const configNeeded = info(ids);
    (configNeeded.tcbLevels as ReturnType<typeof tcbLevel>[])[0] = tcbLevel('ConfigurationNeeded', DEFAULT_SGX_COMPONENTS, 11, TDX(99, 99, 4));
    expect((await verify({ ...spec, tcbInfo: configNeeded, editBody: body15([5, 1, 4]) }, ANY_STATUS)).tcbStatus).toBe(
      'TDRelaunchAdvisedConfigurationNeeded',
    );
  });
});

describe('policy', () => {
  it('refuses a debug TD unless allowed', async () => {
    const debug = (body: Uint8Array) => (body[120] |= 0x01);
    expect(await codeOf(verify({ editBody: debug }))).toBe('ERR_POLICY_VIOLATION');
    expect((await verify({ editBody: debug }, { allowDebug: true })).tdAttributes).toBe('0100004000000000');
  });

  it('checks reference values', async () => {
    const rtmrs = REAL.body.rtmrs.map(toHex);
    const good: TdxPolicy = {
      mrTd: [REAL_MRTD.toUpperCase(), '00'.repeat(48)],
      rtmrs: [rtmrs[0], null, rtmrs[2]],
      mrSeam: toHex(REAL.body.mrSeam),
      tdAttributes: '0000004000000000',
      xfam: 'e71a060000000000',
      reportData: toHex(REAL.body.reportData),
    };
    expect((await verify({}, good)).mrTd).toBe(REAL_MRTD);
    expect(await codeOf(verify({}, { ...good, mrTd: '00'.repeat(48) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({}, { ...good, rtmrs: [null, null, null, 'ab'.repeat(48)] }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({}, { ...good, reportData: '00'.repeat(64) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({}, { ...good, xfam: 'e7' + '00'.repeat(7) }))).toBe('ERR_VALUE_MISMATCH');
    expect(await codeOf(verify({}, { ...good, mrTd: 'abc' }))).toBe('ERR_USAGE');
  });
});
