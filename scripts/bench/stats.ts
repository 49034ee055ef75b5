/** Small statistics helpers for the benchmark: medians over repetitions, percentiles over samples. */

/** Median, min and max of one measurement repeated (the figure the report prints). */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Every repetition's value, in the order measured. */
  values: number[];
}

/** Sorts a copy, ascending. */
function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/**
 * The p-th percentile (0..100) with linear interpolation between closest
 * ranks (numpy's default), so p50 of an even count is the mean of the middle two.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = sorted(values);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

/** Median, min and max of repeated measurements; NaN values (failed runs) are left out. */
export function summarize(values: readonly number[]): Summary {
  const ok = values.filter((v) => Number.isFinite(v));
  if (ok.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, values: [...values] };
  const s = sorted(ok);
  return { median: percentile(s, 50), min: s[0]!, max: s[s.length - 1]!, values: [...values] };
}

/** p50, p99 and max of latency samples (ms). */
export function latencySummary(samples: readonly number[]): { p50: number; p99: number; max: number; n: number } {
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples.length ? samples.reduce((m, v) => (v > m ? v : m), -Infinity) : Number.NaN,
    n: samples.length,
  };
}
