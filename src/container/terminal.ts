/**
 * `-t`: the container's terminal is opened inside the container, in its own
 * devpts instance, by the executor (helpers/nook-exec.c, `open_terminal`),
 * and the monitor relays it to the user's terminal (raw while the container
 * runs, restored after; window size changes follow), or to the log when
 * detached. nook itself only says how big the terminal starts.
 */
import tty from 'node:tty';

/** The user's terminal size when stdout is a terminal, else the classic 24x80 (detached, or output redirected). */
export function initialTerminalSize(): { rows: number; cols: number } {
  if (tty.isatty(1) && process.stdout.rows && process.stdout.columns) return { rows: process.stdout.rows, cols: process.stdout.columns };
  return { rows: 24, cols: 80 };
}
