import { describe, expect, it } from 'vitest';
import { ObscuraError } from '../../errors.ts';
import type { TdxFacts } from './facts.ts';
import { normalizeTdxPolicy } from './policy.ts';
import { sliceSignedMember } from './signed-json.ts';
import { isDebugTd, validateTdxFacts } from './validate.ts';

const FACTS: TdxFacts = {
  platform: 'tdx',
  quoteVersion: 4,
  mrTd: 'aa'.repeat(48),
  rtmrs: ['01'.repeat(48), '02'.repeat(48), '03'.repeat(48), '04'.repeat(48)],
  mrSeam: 'bb'.repeat(48),
  mrSignerSeam: '00'.repeat(48),
  mrConfigId: '00'.repeat(48),
  mrOwner: '00'.repeat(48),
  mrOwnerConfig: '00'.repeat(48),
  reportData: 'cc'.repeat(64),
  tdAttributes: '0000001000000000',
  xfam: 'e71a060000000000',
  teeTcbSvn: '03000400000000000000000000000000',
  tcbStatus: 'UpToDate',
  advisoryIds: [],
  fmspc: '50806f000000',
  tcbEvaluationDataNumber: 17,
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ObscuraError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('validateTdxFacts', () => {
  it('an empty policy still refuses debug TDs and TCB other than UpToDate', () => {
    expect(codeOf(() => validateTdxFacts(FACTS))).toBe('ok');
    expect(codeOf(() => validateTdxFacts({ ...FACTS, tdAttributes: '0100001000000000' }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateTdxFacts({ ...FACTS, tcbStatus: 'SWHardeningNeeded' }))).toBe('ERR_POLICY_VIOLATION');
    expect(codeOf(() => validateTdxFacts({ ...FACTS, tcbStatus: 'SWHardeningNeeded' }, { acceptedTcbStatuses: ['UpToDate', 'SWHardeningNeeded'] }))).toBe('ok');
  });

  it('only bit 0 of TD_ATTRIBUTES is DEBUG', () => {
    expect(isDebugTd('0100000000000000')).toBe(true);
    expect(isDebugTd('fe000000000000ff')).toBe(false);
    expect(isDebugTd('0000000000000001')).toBe(false);
  });

  it('each reference value: any of a list, case-insensitive', () => {
    expect(codeOf(() => validateTdxFacts(FACTS, { mrTd: ['00'.repeat(48), 'AA'.repeat(48)] }))).toBe('ok');
    expect(codeOf(() => validateTdxFacts(FACTS, { mrTd: '00'.repeat(48) }))).toBe('ERR_VALUE_MISMATCH');
    expect(codeOf(() => validateTdxFacts(FACTS, { rtmrs: [undefined, null, '03'.repeat(48), ['ff'.repeat(48), '04'.repeat(48)]] }))).toBe('ok');
    expect(codeOf(() => validateTdxFacts(FACTS, { rtmrs: ['02'.repeat(48)] }))).toBe('ERR_VALUE_MISMATCH');
    for (const key of ['mrSeam', 'mrConfigId', 'mrOwner', 'mrOwnerConfig'] as const) {
      expect(codeOf(() => validateTdxFacts(FACTS, { [key]: 'ee'.repeat(48) }))).toBe('ERR_VALUE_MISMATCH');
    }
    expect(codeOf(() => validateTdxFacts(FACTS, { tdAttributes: '0000001000000001' }))).toBe('ERR_VALUE_MISMATCH');
    expect(codeOf(() => validateTdxFacts(FACTS, { xfam: 'E71A060000000000', reportData: 'CC'.repeat(64) }))).toBe('ok');
    expect(codeOf(() => validateTdxFacts(FACTS, { reportData: 'cc'.repeat(63) + 'cd' }))).toBe('ERR_VALUE_MISMATCH');
  });

  it('a malformed policy is a usage error, never a silent pass', () => {
    for (const bad of [
      { mrTd: 'aa' },
      { mrTd: [] },
      { mrTd: 'zz'.repeat(48) },
      { rtmrs: [null, null, null, null, null] },
      { reportData: 'cc'.repeat(48) },
      { acceptedTcbStatuses: [] },
      { acceptedTcbStatuses: ['Revoked'] },
      { allowDebug: 'yes' },
    ]) {
      expect(codeOf(() => normalizeTdxPolicy(bad as never))).toBe('ERR_USAGE');
    }
  });
});

describe('sliceSignedMember', () => {
  it('returns the exact bytes of the member, whatever the surrounding whitespace and order', () => {
    const doc = ' {\n "signature" : "' + 'ab'.repeat(64) + '" ,\n "tcbInfo" : {"a":"}\\"{","b":[1,{"c":null}]}\n}\n';
    const s = sliceSignedMember(doc, 'tcbInfo', 'doc');
    expect(new TextDecoder().decode(s.signedBytes)).toBe('{"a":"}\\"{","b":[1,{"c":null}]}');
    expect(s.value).toEqual({ a: '}"{', b: [1, { c: null }] });
    expect(s.signature.length).toBe(64);
  });

  it('keeps multi-byte UTF-8 in the slice as served', () => {
    const doc = `{"tcbInfo":{"n":"é✓"},"signature":"${'00'.repeat(64)}"}`;
    expect(sliceSignedMember(new TextEncoder().encode(doc), 'tcbInfo', 'doc').signedBytes).toEqual(new TextEncoder().encode('{"n":"é✓"}'));
  });

  it('refuses anything but one object with exactly the member and the signature', () => {
    const sig = `"signature":"${'00'.repeat(64)}"`;
    for (const bad of [
      '[]',
      `{"tcbInfo":{},${sig},"extra":1}`,
      `{"tcbInfo":{},"tcbInfo":{},${sig}}`,
      `{"tcbInfo":[],${sig}}`,
      `{"tcbInfo":{},"signature":"00"}`,
      `{"tcbInfo":{},${sig}} x`,
      `{"tcbInfo":{},${sig}`,
      `\ufeff{"tcbInfo":{},${sig}}`,
    ]) {
      expect(codeOf(() => sliceSignedMember(bad, 'tcbInfo', 'doc'))).toBe('ERR_MALFORMED');
    }
  });
});
