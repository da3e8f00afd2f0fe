/**
 * Runs the built nook CLI (dist/src/cli/main.cjs) the way a user would, against
 * a test's private store.
 */
import { execa, type ResultPromise } from 'execa';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

/** dist/src/cli/main.cjs, next to this file's dist/test/helpers/. */
export const nookMain = fileURLToPath(new URL('../../src/cli/main.cjs', import.meta.url));

export interface NookTarget {
  root: string;
  runroot: string;
  /** extra environment, e.g. a TempStore's env (HOME, XDG_*) */
  env?: Record<string, string | undefined>;
}

export interface NookRunOptions extends NookTarget {
  /** written to nook's stdin, then closed */
  input?: string;
  cwd?: string;
  /** milliseconds; default 60 s */
  timeout?: number;
}

export interface NookResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** the command line, for assertion messages */
  command: string;
  /** set when nook was killed by a signal (or the timeout) */
  signal?: string;
  timedOut: boolean;
}

function nookArgs(args: readonly string[], target: NookTarget): string[] {
  return [nookMain, '--root', target.root, '--runroot', target.runroot, ...args];
}

/**
 * `nook --root R --runroot RR ARGS...`; never throws for a non-zero exit.
 * stdout and stderr have their final newline stripped.
 */
export async function runNook(args: readonly string[], options: NookRunOptions): Promise<NookResult> {
  const result = await execa(process.execPath, nookArgs(args, options), {
    reject: false,
    env: options.env,
    input: options.input ?? '',
    cwd: options.cwd,
    timeout: options.timeout ?? 60_000,
  });
  return {
    exitCode: result.exitCode ?? 128 + (result.signal ? signalNumber(result.signal) : 0),
    stdout: result.stdout,
    stderr: result.stderr,
    command: `nook ${args.join(' ')}`,
    ...(result.signal ? { signal: result.signal } : {}),
    timedOut: result.timedOut,
  };
}

/**
 * Starts nook without waiting, for tests that signal it, talk to it, or race
 * it: the execa subprocess (await it for the result; reject: false).
 */
export function spawnNook(args: readonly string[], options: NookTarget & { cwd?: string; stdin?: 'pipe' | 'ignore' }): ResultPromise<{ reject: false }> {
  return execa(process.execPath, nookArgs(args, options), {
    reject: false,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin ?? 'pipe',
  }) as ResultPromise<{ reject: false }>;
}

/** One line describing a result, for assertion messages: `t.is(r.exitCode, 0, describe(r))`. */
export function describe(result: NookResult): string {
  const stderr = result.stderr.trim();
  return `${result.command} exited ${result.exitCode}${result.signal ? ` (${result.signal})` : ''}${stderr ? `: ${stderr}` : ''}`;
}

function signalNumber(signal: string): number {
  return (constants.signals as Record<string, number>)[signal] ?? 0;
}
