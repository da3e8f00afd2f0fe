/**
 * `-t`: the container gets a pseudo-terminal of its own. nook opens it
 * (openpty through the syscall door), hands the terminal side to the
 * container as stdin/stdout/stderr, and relays between the user's terminal
 * (in raw mode, so ^C and friends reach the container's program) and the
 * pty's controlling side, passing on window size changes.
 */
import tty from 'node:tty';
import { linuxSyscalls } from '../syscalls/syscalls.js';

export interface AttachedTerminal {
  /** The pty's terminal side: stdin/stdout/stderr of the container. */
  containerFd: number;
  /** Call once the executor has its copy of containerFd. */
  containerStarted(): void;
  /** Waits for the container's last output, then restores the user's terminal. */
  finish(): Promise<void>;
  /** Restores the user's terminal at once (error paths). */
  restore(): void;
}

export async function attachTerminal(options: { interactive: boolean }): Promise<AttachedTerminal> {
  const sys = await linuxSyscalls();
  const size = process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : { rows: 24, cols: 80 };
  const pty = sys.openpty(size);
  const stdinIsTty = process.stdin.isTTY === true;
  let rawSet = false;

  const output = new tty.ReadStream(pty.master);
  const input = new tty.WriteStream(pty.master);
  const done = new Promise<void>((resolve) => {
    // EIO on the controlling side means every terminal-side fd is closed: the container is gone.
    output.on('error', () => resolve());
    output.on('end', () => resolve());
    output.on('close', () => resolve());
  });
  output.pipe(process.stdout, { end: false });

  const onResize = () => {
    if (process.stdout.isTTY) sys.setWindowSize(pty.master, { rows: process.stdout.rows, cols: process.stdout.columns });
  };
  const restore = () => {
    if (rawSet) {
      process.stdin.setRawMode(false);
      rawSet = false;
    }
    process.stdout.off('resize', onResize);
    process.stdin.unpipe(input);
    process.stdin.pause();
  };

  return {
    containerFd: pty.slave,
    containerStarted() {
      sys.close(pty.slave);
      process.stdout.on('resize', onResize);
      if (options.interactive) {
        if (stdinIsTty) {
          process.stdin.setRawMode(true);
          rawSet = true;
        }
        process.stdin.pipe(input);
      }
    },
    async finish() {
      await done;
      restore();
      output.destroy();
      input.destroy();
    },
    restore,
  };
}
