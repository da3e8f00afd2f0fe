/**
 * Starts helpers/nook-exec on a plan and follows its status pipe.
 *
 * This module is on `nook run`'s start path, so it stays light: no execa, one
 * spawn (node:child_process). The executor gets the plan on fd 4 and writes
 * status lines (ExecutorStatus, plan.ts) on fd 3; see helpers/nook-exec.c.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { NookError, ExitCode } from '../lib/errors.js';
import { encodePlan } from './plan-encoding.js';
import type { ExecutorPlan, ExecutorStatus } from './plan.js';

/** What a container's stdin/stdout/stderr are connected to (foreground only; detached ones go to the log). */
export type StdioEntry = 'inherit' | 'pipe' | 'ignore' | number;

export interface ExecutorOptions {
  /** 'inherit' (default), 'pipe', 'ignore', or one entry per fd 0..2 (a number is an fd, e.g. a pty slave). */
  stdio?: StdioEntry | [StdioEntry, StdioEntry, StdioEntry];
  /**
   * Let nook exit while the monitor keeps running (default: the plan's
   * monitor.mode is 'detached'). The monitor gets its own process group, and
   * once the container has started nothing of it holds nook's event loop.
   */
  detached?: boolean;
  /** Environment of the executor itself (the container's is in the plan): PATH for spawn-mount, onExit's. */
  env?: NodeJS.ProcessEnv;
  /** Each trace step (plan.trace), as it happens. */
  onTrace?: (text: string) => void;
  /** Another nook-exec binary (tests). */
  executorPath?: string;
  /**
   * Descriptors the monitor inherits as fds 5, 6, ... and holds for the
   * container's lifetime (the container itself closes them at execve): e.g. the
   * write end of slirp4netns's --exit-fd pipe, so the helper ends with the
   * container even when nook is killed.
   */
  extraFds?: number[];
  /**
   * With plan.holdBeforeNamespaces: the setup process (its pid, as the host
   * sees it) waits, outside any new namespace, until the returned promise
   * settles. Resolved: it goes on; rejected: the start is abandoned (the
   * executor is killed) and fails with that error. Used to have systemd move
   * it into the container's scope.
   */
  onSetup?: (setupPid: number) => Promise<void> | void;
  /**
   * At each `sync` op of the plan (in order): the container process waits
   * until the returned promise settles. Resolved: it goes on; rejected: the
   * start is abandoned (the executor is killed) and fails with that error.
   */
  onPause?: (pids: ContainerPids) => Promise<void> | void;
}

export interface ContainerPids {
  /** The container's first process, as the host sees it. */
  pid: number;
  monitorPid: number;
}

export interface ContainerExit {
  /** The exit status, or 128+N when killed by signal N (as a shell reports it). */
  code: number;
  signal: number | null;
  /** With plan.watchOom: the kernel's OOM killer killed a process of the container. */
  oomKilled?: boolean;
}

/** A failed executor step: one line for the user ("mount proc on /proc: operation not permitted"). */
export class ExecutorError extends NookError {
  readonly step: string;
  readonly errno: string | undefined;

  constructor(status: Extract<ExecutorStatus, { type: 'error' }>) {
    super(`${status.step}: ${status.message}`, {
      exitCode: status.exitCode,
      detail: status.errno ? `executor step "${status.step}" failed with ${status.errno}` : undefined,
    });
    this.name = 'ExecutorError';
    this.step = status.step;
    this.errno = status.errno;
  }
}

export interface ExecutorHandle {
  readonly monitorPid: number;
  /** With plan.hold: the container is ready and waits for `release()`. */
  readonly created: Promise<ContainerPids>;
  /** The container's command runs (execve succeeded). Rejects with ExecutorError/NookError. */
  readonly started: Promise<ContainerPids>;
  /**
   * Foreground: how the container ended. Rejects as `started` does when it
   * never ran. Detached: settles only if nook is still running when the
   * monitor exits (use the exit file).
   */
  readonly exit: Promise<ContainerExit>;
  /** The executor process itself has exited (its exit status is the container's, or the error's exit code). */
  readonly monitorExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The container's stdio when 'pipe' was asked for. */
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** With plan.hold: let the container process execve. */
  release(): void;
  /** Signal the monitor, which forwards it to the container (or abandons a start that has not finished). */
  kill(signal?: NodeJS.Signals | number): void;
}

/** dist/src/runtime/executor.js -> dist/helpers/nook-exec */
export function executorPath(): string {
  return fileURLToPath(new URL('../../helpers/nook-exec', import.meta.url));
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers often await only some of the promises: the others must not be "unhandled".
  promise.catch(() => {});
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (value) => {
      if (!d.settled) {
        d.settled = true;
        resolve(value);
      }
    },
    reject: (error) => {
      if (!d.settled) {
        d.settled = true;
        reject(error);
      }
    },
  };
  return d;
}

function stdioFor(options: ExecutorOptions, detached: boolean): StdioOptions {
  // Detached: the monitor connects the container to its log itself.
  const extra = options.extraFds ?? [];
  if (detached) return ['ignore', 'ignore', 'ignore', 'pipe', 'pipe', ...extra];
  const s = options.stdio ?? 'inherit';
  const three = Array.isArray(s) ? s : [s, s, s];
  return [...three, 'pipe', 'pipe', ...extra];
}

/**
 * Spawns the executor and hands it the plan. Throws a NookError right away
 * when the plan cannot be encoded or the executor is missing; everything else
 * is reported through the returned promises.
 */
export function startExecutor(plan: ExecutorPlan, options: ExecutorOptions = {}): ExecutorHandle {
  const encoded = encodePlan(plan);
  const path = options.executorPath ?? executorPath();
  try {
    accessSync(path, fsConstants.X_OK);
  } catch (error) {
    throw new NookError(`the executor ${path} is missing or not executable (run npm run build)`, { cause: error });
  }
  const detached = options.detached ?? plan.monitor.mode === 'detached';

  const child: ChildProcess = spawn(path, [], {
    stdio: stdioFor(options, detached),
    env: options.env ?? process.env,
    detached,
  });
  const statusStream = child.stdio[3] as Readable;
  const control = child.stdio[4] as Writable;

  const created = deferred<ContainerPids>();
  const started = deferred<ContainerPids>();
  const exit = deferred<ContainerExit>();
  const monitorExit = deferred<{ code: number | null; signal: NodeJS.Signals | null }>();
  let failure: NookError | undefined;

  const failAll = (error: NookError) => {
    failure ??= error;
    created.reject(failure);
    started.reject(failure);
    exit.reject(failure);
  };

  // Detached: once the container runs, nothing of the monitor keeps nook alive.
  const letGo = () => {
    control.destroy();
    statusStream.destroy();
    child.unref();
  };

  const onStatus = (status: ExecutorStatus) => {
    switch (status.type) {
      case 'step':
        options.onTrace?.(status.text);
        break;
      case 'setup':
        void Promise.resolve()
          .then(() => options.onSetup?.(status.pid))
          .then(
            () => {
              control.write(Buffer.from('C'));
              if (!plan.hold) control.end();
            },
            (error: unknown) => {
              failAll(error instanceof NookError ? error : new NookError(String(error), { cause: error }));
              child.kill('SIGKILL');
            },
          );
        break;
      case 'paused':
        void Promise.resolve()
          .then(() => options.onPause?.({ pid: status.pid, monitorPid: status.monitorPid }))
          .then(
            () => {
              control.write(Buffer.from('S'));
            },
            (error: unknown) => {
              failAll(error instanceof NookError ? error : new NookError(String(error), { cause: error }));
              child.kill('SIGKILL');
            },
          );
        break;
      case 'created':
        created.resolve({ pid: status.pid, monitorPid: status.monitorPid });
        // With a start FIFO the container no longer reads the control fd.
        if (plan.startFifo) control.end();
        break;
      case 'started':
        created.resolve({ pid: status.pid, monitorPid: status.monitorPid });
        started.resolve({ pid: status.pid, monitorPid: status.monitorPid });
        if (!plan.hold) control.destroy();
        if (detached) letGo();
        break;
      case 'error':
        failAll(new ExecutorError(status));
        break;
      case 'exited':
        exit.resolve({ code: status.code, signal: status.signal, ...(status.oomKilled ? { oomKilled: true } : {}) });
        break;
    }
  };

  let pending = '';
  statusStream.setEncoding('utf8');
  statusStream.on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() === '') continue;
      let status: ExecutorStatus;
      try {
        status = JSON.parse(line) as ExecutorStatus;
      } catch {
        continue; // not ours; the executor writes nothing else on fd 3
      }
      onStatus(status);
    }
  });
  statusStream.on('error', () => {});
  control.on('error', () => {}); // EPIPE when the executor failed before reading the plan

  child.on('error', (error) => {
    failAll(new NookError(`cannot start the executor ${path}: ${error.message}`, { cause: error }));
    monitorExit.resolve({ code: null, signal: null });
  });
  child.on('exit', (code, signal) => {
    monitorExit.resolve({ code, signal });
    // Status lines may still be buffered: settle once the pipe has been read to the end.
    const settle = () => {
      if (failure || exit.settled) return;
      // Handoff: the monitor leaves once the container is created or runs; its exit is not the container's.
      if (plan.monitor.mode === 'handoff' && code === 0 && created.settled) return;
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      if (!started.settled) failAll(new NookError(`the executor ${how} before the container started`, { exitCode: ExitCode.Internal }));
      else if (code !== null) exit.resolve({ code, signal: null });
      else {
        // The monitor itself was killed, and the container with it (parent-death signal).
        const number = (signal && osConstants.signals[signal]) || 9;
        exit.resolve({ code: 128 + number, signal: number });
      }
    };
    if (statusStream.readableEnded || statusStream.destroyed) settle();
    else statusStream.once('close', settle);
  });

  control.write(encoded);
  if (!plan.hold && !plan.holdBeforeNamespaces) control.end();

  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT, EACCES...): 'error' follows.
    return handle(-1);
  }
  return handle(child.pid);

  function handle(monitorPid: number): ExecutorHandle {
    return {
      monitorPid,
      created: created.promise,
      started: started.promise,
      exit: exit.promise,
      monitorExit: monitorExit.promise,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      release() {
        if (!plan.hold) return;
        control.end(Buffer.from('G'));
      },
      kill(signal: NodeJS.Signals | number = 'SIGTERM') {
        try {
          if (monitorPid > 0) process.kill(monitorPid, signal);
        } catch {
          // already gone
        }
      },
    };
  }
}

/** Runs a plan in the foreground to its end: the container's exit, or the start's error. */
export async function runExecutor(plan: ExecutorPlan, options: ExecutorOptions = {}): Promise<ContainerExit & ContainerPids> {
  const handle = startExecutor(plan, { ...options, detached: false });
  const pids = await handle.started;
  const exit = await handle.exit;
  return { ...pids, ...exit };
}
