/**
 * The part of the worker's configuration that is measured: changing it changes the launch measurement,
 * so a manifest admits a configuration, not just code. The reference values come from here too.
 */
import { DEFAULT_PADDING_BUCKETS_BYTES } from '../shared/protocol/padding.ts';

export interface WorkerMeasuredConfig {
  paddingBuckets: number[];
}

export function workerMeasuredConfig(input: Partial<WorkerMeasuredConfig> = {}): Record<string, unknown> {
  return { paddingBuckets: input.paddingBuckets ?? [...DEFAULT_PADDING_BUCKETS_BYTES] };
}
