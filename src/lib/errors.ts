/**
 * Errors are values: a one-line message a user can act on, an exit code chosen
 * as podman chooses it, and the underlying cause for `--debug`. The library
 * throws these; only the CLI prints them and decides how the process ends.
 */
export const ExitCode = {
  /** nook itself failed (bad flag, store problem, kernel refused a step). */
  Internal: 125,
  /** The container's command exists but cannot be executed. */
  CannotInvoke: 126,
  /** The container's command was not found. */
  NotFound: 127,
} as const;

export class NookError extends Error {
  readonly exitCode: number;
  /** Extra lines shown only under --debug. */
  readonly detail: string | undefined;

  constructor(message: string, options: { cause?: unknown; exitCode?: number; detail?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NookError';
    this.exitCode = options.exitCode ?? ExitCode.Internal;
    this.detail = options.detail;
  }
}

/** Wraps anything thrown below the library's edge into a NookError with context. */
export function wrapError(context: string, cause: unknown): NookError {
  if (cause instanceof NookError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new NookError(`${context}: ${reason}`, { cause });
}

/** errno-style code of a Node system error, if any ("ENOENT", ...). */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}
