/**
 * Advisory file locks (flock(2)) shared by every nook process of a user: the
 * image store, container state, anything two `nook` commands could touch at
 * once. flock locks die with the process, so a crash never leaves a stale lock.
 *
 * The Syscalls door's flock is synchronous; a blocking flock would freeze
 * Node's event loop (progress bars, signal handling), so waiting is done by
 * polling a non-blocking flock with a growing pause (5 ms up to 100 ms).
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NookError } from './errors.js';
import { linuxSyscalls, type Syscalls } from '../syscalls/syscalls.js';

export type LockMode = 'shared' | 'exclusive';

export interface LockOptions {
  mode?: LockMode;
  /** give up after this many milliseconds (default: wait as long as it takes) */
  timeoutMs?: number;
  /** called once when the lock is busy and we start waiting (e.g. to print "waiting for ...") */
  onWait?: () => void;
  /** a non-default Syscalls (tests) */
  syscalls?: Syscalls;
  /** what the lock protects, for the timeout message */
  description?: string;
}

export interface FileLock {
  readonly path: string;
  readonly mode: LockMode;
  /** Unlocks and closes; safe to call twice. */
  release(): void;
}

/** Takes the lock only if it is free now; null when another process holds it. */
export async function tryLock(path: string, options: Omit<LockOptions, 'timeoutMs' | 'onWait'> = {}): Promise<FileLock | null> {
  const syscalls = options.syscalls ?? (await linuxSyscalls());
  const mode = options.mode ?? 'exclusive';
  const fd = openLockFile(path);
  try {
    if (!syscalls.flock(fd, mode, true)) {
      closeSync(fd);
      return null;
    }
  } catch (error) {
    closeSync(fd);
    throw new NookError(`cannot lock ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return heldLock(path, mode, fd, syscalls);
}

/** Waits until the lock is ours. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<FileLock> {
  const started = Date.now();
  let pause = 5;
  let announced = false;
  for (;;) {
    const lock = await tryLock(path, options);
    if (lock) return lock;
    if (!announced) {
      announced = true;
      options.onWait?.();
    }
    if (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs) {
      throw new NookError(`timed out after ${options.timeoutMs} ms waiting for the lock on ${options.description ?? path}`);
    }
    await sleep(pause);
    pause = Math.min(pause * 2, 100);
  }
}

/** Runs `fn` with the lock held, releasing it however `fn` ends. */
export async function withLock<T>(path: string, options: LockOptions, fn: () => Promise<T> | T): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

function openLockFile(path: string): number {
  try {
    return openSync(path, 'a', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      return openSync(path, 'a', 0o600);
    }
    throw new NookError(`cannot open lock file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function heldLock(path: string, mode: LockMode, fd: number, syscalls: Syscalls): FileLock {
  let open = true;
  return {
    path,
    mode,
    release() {
      if (!open) return;
      open = false;
      try {
        syscalls.flock(fd, 'unlock');
      } finally {
        closeSync(fd); // closing alone would release it too; unlock first for clarity in traces
      }
    },
  };
}
