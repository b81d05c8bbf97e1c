/**
 * Validate step: verified TDX facts against the caller's reference values (policy.ts). Runs only on
 * facts from verify.ts; it judges values, never signatures.
 */
import { ObscuraError } from '../../errors.ts';
import type { TdxFacts } from './facts.ts';
import { normalizeTdxPolicy, type TdxPolicy } from './policy.ts';

/** TD_ATTRIBUTES bit 0 (TUD.DEBUG): the host may read and change the TD's state. */
export const TD_ATTRIBUTES_DEBUG_BIT = 0;

export function isDebugTd(tdAttributesHex: string): boolean {
  return (parseInt(tdAttributesHex.slice(0, 2), 16) & (1 << TD_ATTRIBUTES_DEBUG_BIT)) !== 0;
}

function expectOneOf(actual: string, allowed: readonly string[] | undefined, what: string): void {
  if (allowed !== undefined && !allowed.includes(actual)) {
    throw new ObscuraError('ERR_VALUE_MISMATCH', `${what} ${actual} is not an expected value`);
  }
}

/**
 * Throws ERR_POLICY_VIOLATION (debug TD, TCB status not accepted), ERR_VALUE_MISMATCH (a measurement,
 * attribute or report data differs) or ERR_USAGE (a malformed policy). Returns the facts unchanged.
 */
export function validateTdxFacts(facts: TdxFacts, policy: TdxPolicy = {}): TdxFacts {
  const p = normalizeTdxPolicy(policy);
  if (!p.allowDebug && isDebugTd(facts.tdAttributes)) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', 'the TD is a debug TD (TD_ATTRIBUTES.DEBUG is set)');
  }
  if (!p.acceptedTcbStatuses.includes(facts.tcbStatus)) {
    throw new ObscuraError('ERR_POLICY_VIOLATION', `TCB status ${facts.tcbStatus} is not accepted (${p.acceptedTcbStatuses.join(', ')})`);
  }
  expectOneOf(facts.mrTd, p.mrTd, 'MRTD');
  p.rtmrs.forEach((allowed, i) => expectOneOf(facts.rtmrs[i], allowed, `RTMR${i}`));
  expectOneOf(facts.mrSeam, p.mrSeam, 'MRSEAM');
  expectOneOf(facts.mrConfigId, p.mrConfigId, 'MRCONFIGID');
  expectOneOf(facts.mrOwner, p.mrOwner, 'MROWNER');
  expectOneOf(facts.mrOwnerConfig, p.mrOwnerConfig, 'MROWNERCONFIG');
  expectOneOf(facts.tdAttributes, p.tdAttributes === undefined ? undefined : [p.tdAttributes], 'TD_ATTRIBUTES');
  expectOneOf(facts.xfam, p.xfam === undefined ? undefined : [p.xfam], 'XFAM');
  expectOneOf(facts.reportData, p.reportData === undefined ? undefined : [p.reportData], 'REPORTDATA');
  return facts;
}
