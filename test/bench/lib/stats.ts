/** Percentiles, summaries and the bench's progress lines (stderr, so `--json` stdout stays clean). */

export interface Summary {
  n: number;
  min: number;
  p25: number;
  p50: number;
  p75: number;
  p99: number;
  max: number;
  mean: number;
}

/** Linear-interpolated percentile (p in 0..100) of an unsorted sample. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    min: Math.min(...values),
    p25: percentile(values, 25),
    p50: percentile(values, 50),
    p75: percentile(values, 75),
    p99: percentile(values, 99),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}

/** Round for reports: 3 significant-ish decimals, never -0. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  const r = Math.round(x * f) / f;
  return Object.is(r, -0) ? 0 : r;
}

/** The spread reported beside a median of runs: min and max over the runs, and their quartiles. */
export interface Spread {
  min: number;
  p25: number;
  p75: number;
  max: number;
}

export function spreadOf(values: readonly number[]): Spread {
  return { min: round(Math.min(...values)), p25: round(percentile(values, 25)), p75: round(percentile(values, 75)), max: round(Math.max(...values)) };
}

const started = performance.now();
/** A step line on stderr, with the seconds since the bench started. */
export function step(line: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}\n`);
}

/** Run `fn` `total` times with `concurrency` in flight; returns each call's latency in ms. */
export async function timedConcurrent(total: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const t0 = performance.now();
      await fn(i);
      out.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return out;
}
