/** What a verified GPU evidence states, in plain values a policy (and a log) can use. */
import { toHex } from '../../bytes.ts';
import type { NvidiaSpdmEvidence } from './spdm.ts';
import type { NvidiaOpaqueData } from './opaque-data.ts';

export interface NvidiaGpuFacts {
  /** The requester nonce (lowercase hex): what binds the evidence to this verification. */
  readonly nonce: string;
  /** The GPU's own nonce in MEASUREMENTS (lowercase hex). */
  readonly responderNonce: string;
  /** Measurement index -> value, lowercase hex. */
  readonly measurements: Readonly<Record<number, string>>;
  readonly opaque: NvidiaOpaqueData;
}

export function nvidiaGpuFacts(evidence: NvidiaSpdmEvidence): NvidiaGpuFacts {
  const measurements: Record<number, string> = {};
  for (const block of evidence.response.blocks) measurements[block.index] = toHex(block.value);
  return {
    nonce: toHex(evidence.request.nonce),
    responderNonce: toHex(evidence.response.nonce),
    measurements,
    opaque: evidence.opaque,
  };
}
