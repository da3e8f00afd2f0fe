/**
 * NOOK_TIMING=1 prints how long each phase of a command took since the
 * process started, on stderr: the cheapest way to see where a `nook run`
 * spends its time (bench/ and docs/performance.md use it).
 */
const enabled = process.env.NOOK_TIMING === '1';

export function mark(phase: string): void {
  if (enabled) process.stderr.write(`[timing] ${performance.now().toFixed(1).padStart(7)} ms  ${phase}\n`);
}
