/**
 * Reference values a TD must match. Every field left out is not checked, except two that default to
 * the safe side: a debug TD is refused unless `allowDebug`, and only "UpToDate" TCB is accepted
 * unless `acceptedTcbStatuses` says otherwise. Hex is case-insensitive, in the quote's byte order.
 */
import { ObscuraError } from '../../errors.ts';
import { TDX_ATTRIBUTES_BYTES, TDX_MEASUREMENT_BYTES, TDX_REPORT_DATA_BYTES, TDX_RTMR_COUNT } from './quote.ts';
import { TDX_TCB_STATUSES, type TdxTcbStatus } from './tcb-status.ts';

/** One value, or any of several (e.g. the builds of a rollout). */
export type HexChoice = string | readonly string[];

export interface TdxPolicy {
  readonly mrTd?: HexChoice;
  /** RTMR0..3 by index; a missing or null entry is not checked. */
  readonly rtmrs?: readonly (HexChoice | null | undefined)[];
  readonly mrSeam?: HexChoice;
  readonly mrConfigId?: HexChoice;
  readonly mrOwner?: HexChoice;
  readonly mrOwnerConfig?: HexChoice;
  /** Exact TD_ATTRIBUTES (8 bytes). */
  readonly tdAttributes?: string;
  /** Exact XFAM (8 bytes). */
  readonly xfam?: string;
  /** Exact REPORTDATA (64 bytes): the key or nonce binding the caller expects. */
  readonly reportData?: string;
  /** A debug TD's memory and state are open to the host: refused unless this is true. */
  readonly allowDebug?: boolean;
  /** The TCB statuses accepted; default ["UpToDate"]. */
  readonly acceptedTcbStatuses?: readonly TdxTcbStatus[];
}

export const DEFAULT_ACCEPTED_TCB_STATUSES: readonly TdxTcbStatus[] = ['UpToDate'];

/** The policy with every value checked for form and lowercased. */
export interface NormalizedTdxPolicy {
  readonly mrTd?: readonly string[];
  readonly rtmrs: readonly (readonly string[] | undefined)[];
  readonly mrSeam?: readonly string[];
  readonly mrConfigId?: readonly string[];
  readonly mrOwner?: readonly string[];
  readonly mrOwnerConfig?: readonly string[];
  readonly tdAttributes?: string;
  readonly xfam?: string;
  readonly reportData?: string;
  readonly allowDebug: boolean;
  readonly acceptedTcbStatuses: readonly TdxTcbStatus[];
}

function usage(message: string): never {
  throw new ObscuraError('ERR_USAGE', `TDX policy: ${message}`);
}

function hex(value: unknown, bytes: number, what: string): string {
  if (typeof value !== 'string' || value.length !== 2 * bytes || !/^[0-9a-fA-F]*$/.test(value)) {
    usage(`${what} must be ${bytes} bytes of hex`);
  }
  return value.toLowerCase();
}

function choice(value: HexChoice | null | undefined, bytes: number, what: string): readonly string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) usage(`${what} must be hex or a non-empty list of hex`);
  return list.map((v, i) => hex(v, bytes, `${what}[${i}]`));
}

/** Checks the policy's form. Throws ERR_USAGE: a policy that cannot mean what it says is refused. */
export function normalizeTdxPolicy(policy: TdxPolicy = {}): NormalizedTdxPolicy {
  if (typeof policy !== 'object' || policy === null) usage('must be an object');
  const rtmrs = policy.rtmrs ?? [];
  if (!Array.isArray(rtmrs) || rtmrs.length > TDX_RTMR_COUNT) usage(`rtmrs has at most ${TDX_RTMR_COUNT} entries`);
  const accepted = policy.acceptedTcbStatuses ?? DEFAULT_ACCEPTED_TCB_STATUSES;
  if (!Array.isArray(accepted) || accepted.length === 0 || !accepted.every((s) => TDX_TCB_STATUSES.includes(s))) {
    usage(`acceptedTcbStatuses must be a non-empty list of ${TDX_TCB_STATUSES.join(', ')}`);
  }
  if (policy.allowDebug !== undefined && typeof policy.allowDebug !== 'boolean') usage('allowDebug must be a boolean');
  return {
    mrTd: choice(policy.mrTd, TDX_MEASUREMENT_BYTES, 'mrTd'),
    rtmrs: rtmrs.map((r, i) => choice(r, TDX_MEASUREMENT_BYTES, `rtmrs[${i}]`)),
    mrSeam: choice(policy.mrSeam, TDX_MEASUREMENT_BYTES, 'mrSeam'),
    mrConfigId: choice(policy.mrConfigId, TDX_MEASUREMENT_BYTES, 'mrConfigId'),
    mrOwner: choice(policy.mrOwner, TDX_MEASUREMENT_BYTES, 'mrOwner'),
    mrOwnerConfig: choice(policy.mrOwnerConfig, TDX_MEASUREMENT_BYTES, 'mrOwnerConfig'),
    tdAttributes: policy.tdAttributes === undefined ? undefined : hex(policy.tdAttributes, TDX_ATTRIBUTES_BYTES, 'tdAttributes'),
    xfam: policy.xfam === undefined ? undefined : hex(policy.xfam, TDX_ATTRIBUTES_BYTES, 'xfam'),
    reportData: policy.reportData === undefined ? undefined : hex(policy.reportData, TDX_REPORT_DATA_BYTES, 'reportData'),
    allowDebug: policy.allowDebug === true,
    acceptedTcbStatuses: accepted,
  };
}
