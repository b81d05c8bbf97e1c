/** The verified facts of a TDX quote, as plain data: lowercase hex in the quote's byte order. */
import { toHex } from '../../bytes.ts';
import type { TdxTcbStatus } from './tcb-status.ts';
import type { VerifiedTdxQuote } from './verify.ts';

export interface TdxFacts {
  readonly platform: 'tdx';
  readonly quoteVersion: 4 | 5;
  readonly mrTd: string;
  readonly rtmrs: readonly [string, string, string, string];
  readonly mrSeam: string;
  readonly mrSignerSeam: string;
  readonly mrConfigId: string;
  readonly mrOwner: string;
  readonly mrOwnerConfig: string;
  /** 64 bytes the TD chose: where a key or nonce is bound. */
  readonly reportData: string;
  /** 8 bytes, little-endian as quoted: bit 0 of the first byte is DEBUG. */
  readonly tdAttributes: string;
  readonly xfam: string;
  readonly teeTcbSvn: string;
  /** TDX 1.5 reports (quote v5, body type 3) only. */
  readonly mrServiceTd?: string;
  readonly tcbStatus: TdxTcbStatus;
  readonly advisoryIds: readonly string[];
  readonly fmspc: string;
  /** Of the TCB info used: how recent Intel's TCB recovery data was. */
  readonly tcbEvaluationDataNumber: number;
}

export function tdxFacts(v: VerifiedTdxQuote): TdxFacts {
  const b = v.quote.body;
  const facts: TdxFacts = {
    platform: 'tdx',
    quoteVersion: v.quote.header.version,
    mrTd: toHex(b.mrTd),
    rtmrs: [toHex(b.rtmrs[0]), toHex(b.rtmrs[1]), toHex(b.rtmrs[2]), toHex(b.rtmrs[3])],
    mrSeam: toHex(b.mrSeam),
    mrSignerSeam: toHex(b.mrSignerSeam),
    mrConfigId: toHex(b.mrConfigId),
    mrOwner: toHex(b.mrOwner),
    mrOwnerConfig: toHex(b.mrOwnerConfig),
    reportData: toHex(b.reportData),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    teeTcbSvn: toHex(b.teeTcbSvn),
    tcbStatus: v.tcb.tcbStatus,
    advisoryIds: v.tcb.advisoryIds,
    fmspc: toHex(v.pck.fmspc),
    tcbEvaluationDataNumber: v.tcbInfo.tcbEvaluationDataNumber,
  };
  return b.mrServiceTd === undefined ? facts : { ...facts, mrServiceTd: toHex(b.mrServiceTd) };
}
