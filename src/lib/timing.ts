/**
 * NOOK_TIMING=1 prints how long each phase of a command took since the
 * process started, on stderr: the cheapest way to see where a `nook run`
 * spends its time (bench/ and docs/performance.md use it). A helper process
 * (the layer extractor) counts from its parent's start instead
 * (`countFrom`), so that its marks line up with the parent's.
 */
const enabled = process.env.NOOK_TIMING === '1';
/** where marks count from, ms since the epoch; undefined: this process's start (`performance` loads perf_hooks: only when timing) */
let origin: number | undefined;

/** `at`: when it happened (`now()`), if not now */
export function mark(phase: string, at?: number): void {
  if (enabled) process.stderr.write(`[timing] ${(performance.timeOrigin - (origin ?? performance.timeOrigin) + (at ?? performance.now())).toFixed(1).padStart(7)} ms  ${phase}\n`);
}

/** The time for a later `mark(phase, at)`, when timing is on. */
export function now(): number | undefined {
  return enabled ? performance.now() : undefined;
}

/** This process's start (ms since the epoch) when timing is on, for a helper's `countFrom`. */
export function timingOrigin(): number | undefined {
  return enabled ? performance.timeOrigin : undefined;
}

/** Marks from now on count from `epochMs` (another process's `timingOrigin()`). */
export function countFrom(epochMs: number): void {
  origin = epochMs;
}
