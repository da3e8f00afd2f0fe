/**
 * The statistics and number formats of the benchmark suite: every figure is a
 * median over repeated runs with its min and max, and nook's figures are also
 * given as a ratio to podman's (or to a floor, or to the host's).
 *
 * Pure functions, unit-tested in test/unit/bench-stats.test.ts.
 */

/** A set of repeated measurements reduced to what the tables print. */
export interface Summary {
  /** number of samples */
  n: number;
  median: number;
  min: number;
  max: number;
  /** every sample in the order taken, so a reader of the JSON can see drift (disk, load) */
  samples: number[];
}

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('no samples to summarize');
  for (const value of samples) if (!Number.isFinite(value)) throw new Error(`not a finite sample: ${value}`);
  return {
    n: samples.length,
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples: [...samples],
  };
}

/** a / b of the medians, or undefined when either side is missing or b is 0. */
export function ratio(a: Summary | number | undefined, b: Summary | number | undefined): number | undefined {
  const x = typeof a === 'number' ? a : a?.median;
  const y = typeof b === 'number' ? b : b?.median;
  if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y) || y === 0) return undefined;
  return x / y;
}

/** "0.42x", "1.3x", "12x"; "-" when there is no ratio. Two significant digits below 10. */
export function formatRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '-';
  if (value >= 10) return `${Math.round(value)}x`;
  if (value >= 1) return `${value.toFixed(1)}x`;
  return `${value.toPrecision(2)}x`;
}

/** Three significant digits at most, without a trailing ".0" noise: 0.123, 1.23, 12.3, 123, 1234. */
function threeDigits(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

/** Seconds as "840 µs", "12.3 ms", "1.23 s". */
export function formatSeconds(seconds: number): string {
  const abs = Math.abs(seconds);
  if (abs < 1e-3) return `${threeDigits(seconds * 1e6)} µs`;
  if (abs < 1) return `${threeDigits(seconds * 1e3)} ms`;
  return `${threeDigits(seconds)} s`;
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes as "512 B", "3.40 MiB", "1.20 GiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${threeDigits(value)} ${BINARY_UNITS[unit]}`;
}

/** Bytes per second as "612 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export type Unit = 'seconds' | 'bytes' | 'bytesPerSecond';

export function formatValue(value: number, unit: Unit): string {
  switch (unit) {
    case 'seconds':
      return formatSeconds(value);
    case 'bytes':
      return formatBytes(value);
    case 'bytesPerSecond':
      return formatRate(value);
  }
}

/** "212 ms (198 ms-260 ms)"; the range is left out for a single sample. */
export function formatSummary(summary: Summary | undefined, unit: Unit): string {
  if (!summary) return '-';
  const mid = formatValue(summary.median, unit);
  if (summary.n === 1) return mid;
  return `${mid} (${formatValue(summary.min, unit)}-${formatValue(summary.max, unit)})`;
}
