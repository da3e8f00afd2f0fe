/**
 * The lifeline: a pipe (or socket pair) whose write end the executor's
 * monitor holds for as long as the container lives. The network helper gets
 * the read end and ends when it reads end-of-file, so it never outlives the
 * container, whatever happens to nook. See docs/networking.md, "Lifetime".
 */
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { NookError } from '../lib/errors.js';

export type Lifeline = Socket | number;

/** The fd to hand to the helper (execa/child_process dup it into the child). */
export function lifelineFd(lifeline: Lifeline | undefined, helper: string): number {
  if (typeof lifeline === 'number') return lifeline;
  // A net.Socket made by child_process for an extra stdio 'pipe' wraps a socketpair end; its fd is on the handle.
  const fd = (lifeline as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
  if (typeof fd === 'number' && fd >= 0) return fd;
  throw new NookError(`internal: attachNetwork needs the lifeline (the pipe whose other end the executor's monitor holds), or ${helper} would outlive the container`);
}

/** nook must not keep its copy: the helper's end-of-file would never come while nook runs. */
export function closeLifeline(lifeline: Lifeline | undefined): void {
  if (lifeline === undefined) return;
  try {
    if (typeof lifeline === 'number') closeSync(lifeline);
    else lifeline.destroy();
  } catch {
    // already closed
  }
}
