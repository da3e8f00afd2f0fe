/**
 * Running the programs under test and timing them. Wall time is taken from
 * just before spawn() to the child's exit, with Node's child_process (not
 * execa) so that the harness adds as little as possible and the same to
 * every tool.
 */
import { spawn, type StdioOptions } from 'node:child_process';

/** A program, its arguments and its environment (the full environment, not additions). */
export interface Command {
  file: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface CommandResult {
  /** from spawn() to exit, in seconds */
  seconds: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** written to stdin, which is then closed; without it stdin is /dev/null */
  input?: string;
  /** milliseconds before the child is killed (default 10 minutes) */
  timeoutMs?: number;
  /** keep at most this many bytes of each output stream (default 1 MiB) */
  maxOutput?: number;
}

export function describeCommand(command: Command): string {
  return [command.file, ...command.args].map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Runs a command to its end and returns its output and wall time; never
 * throws for a non-zero exit (see runChecked).
 *
 * A detached container's helpers may inherit and keep our output pipes open
 * after the command itself exited; the result is therefore settled at exit,
 * and the pipes are given only a short grace period to drain.
 */
export function runCommand(command: Command, options: RunOptions = {}): Promise<CommandResult> {
  const maxOutput = options.maxOutput ?? 1 << 20;
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
    const started = process.hrtime.bigint();
    const child = spawn(command.file, command.args, { env: command.env ?? process.env, cwd: command.cwd, stdio });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout!.on('data', (chunk: Buffer) => {
      if (outBytes < maxOutput) out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (errBytes < maxOutput) err.push(chunk);
      errBytes += chunk.length;
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    let exited: { seconds: number; code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const settle = () => {
      if (settled || !exited) return;
      settled = true;
      clearTimeout(timer);
      child.stdout!.destroy();
      child.stderr!.destroy();
      resolve({
        seconds: exited.seconds,
        exitCode: exited.code,
        signal: exited.signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    };
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${command.file}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      exited = { seconds: Number(process.hrtime.bigint() - started) / 1e9, code, signal };
      setTimeout(settle, 2000).unref();
    });
    child.once('close', settle);
  });
}

export class CommandError extends Error {
  constructor(
    readonly command: Command,
    readonly result: CommandResult,
  ) {
    const why = result.signal ? `was killed by ${result.signal}` : `exited ${result.exitCode}`;
    const stderr = result.stderr.trim().split('\n').slice(-5).join(' | ');
    const line = describeCommand(command).replace(/\s+/g, ' ');
    super(`${line.length > 200 ? `${line.slice(0, 200)}...` : line} ${why}${stderr ? `: ${stderr}` : ''}`);
  }
}

/** runCommand, but a non-zero exit or a signal is an error carrying the command's last lines of stderr. */
export async function runChecked(command: Command, options: RunOptions = {}): Promise<CommandResult> {
  const result = await runCommand(command, options);
  if (result.exitCode !== 0) throw new CommandError(command, result);
  return result;
}

/** Seconds of one successful run of the command. */
export async function timeChecked(command: Command, options: RunOptions = {}): Promise<number> {
  return (await runChecked(command, options)).seconds;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Which of the named programs are not on PATH. */
export async function missingPrograms(names: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const missing: string[] = [];
  for (const name of names) {
    const found = await runCommand({ file: 'sh', args: ['-c', 'command -v "$1"', 'sh', name], env });
    if (found.exitCode !== 0) missing.push(name);
  }
  return missing;
}
