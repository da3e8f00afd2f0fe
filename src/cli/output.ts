/**
 * The only place that turns library results and errors into text and exit codes.
 */
import { NookError, ExitCode } from '../lib/errors.js';

export function reportError(error: unknown, debug: boolean): number {
  if (error instanceof NookError) {
    process.stderr.write(`Error: ${error.message}\n`);
    if (debug) {
      if (error.detail) process.stderr.write(`${error.detail}\n`);
      if (error.cause) process.stderr.write(`caused by: ${formatCause(error.cause)}\n`);
    }
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`Error: ${message.split('\n')[0]}\n`);
  if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return ExitCode.Internal;
}

function formatCause(cause: unknown): string {
  if (cause instanceof Error) return cause.stack ?? cause.message;
  return String(cause);
}

/** Print a value as JSON for scripts (`--format json`). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

/** A plain text table with left-aligned columns, as podman prints. */
export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('').trimEnd();
  process.stdout.write(`${[line(headers), ...rows.map(line)].join('\n')}\n`);
}

/** Global options every command can read (commander keeps them on the root). */
export interface GlobalOptions {
  root?: string;
  runroot?: string;
  debug?: boolean;
  trace?: boolean;
}
