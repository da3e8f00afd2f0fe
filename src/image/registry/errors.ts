/**
 * Registry failures, each with a kind the pull logic can act on (try the next
 * search registry or mirror, or give up) and a one-line message that says what
 * happened and, where there is one, the fix.
 */
import { NookError } from '../../lib/errors.js';

export type RegistryErrorKind =
  /** the repository, tag, manifest or blob does not exist */
  | 'not-found'
  /** the registry wants credentials, or refused the ones given */
  | 'unauthorized'
  /** credentials accepted, access refused (or a hidden repository, as Docker Hub answers) */
  | 'denied'
  /** connection refused, DNS failure, timeout */
  | 'unreachable'
  /** certificate not trusted, wrong name, expired, or the server does not speak TLS */
  | 'tls'
  /** no manifest for the requested platform */
  | 'platform'
  /** content does not match its digest */
  | 'digest'
  /** 5xx after retries, or a response that is not what the distribution spec says */
  | 'server'
  /** registries.conf blocks the registry */
  | 'blocked'
  /** the image uses something nook does not handle (schema 1, unknown layer type) */
  | 'unsupported';

export class RegistryError extends NookError {
  constructor(
    readonly kind: RegistryErrorKind,
    message: string,
    options: { cause?: unknown; detail?: string } = {},
  ) {
    super(message, options);
    this.name = 'RegistryError';
  }
}

export function isRegistryError(error: unknown, ...kinds: RegistryErrorKind[]): error is RegistryError {
  return error instanceof RegistryError && (kinds.length === 0 || kinds.includes(error.kind));
}

/** The body of an error response, per the distribution spec: {"errors":[{"code","message","detail"}]}. */
export interface DistributionErrorBody {
  code: string;
  message: string;
}

export function parseErrorBody(body: string): DistributionErrorBody[] {
  try {
    const parsed = JSON.parse(body) as { errors?: unknown; details?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is { code?: unknown; message?: unknown } => typeof e === 'object' && e !== null)
      .map((e) => ({ code: typeof e.code === 'string' ? e.code : '', message: typeof e.message === 'string' ? e.message : '' }));
  } catch {
    return [];
  }
}

/** "MANIFEST_UNKNOWN: manifest unknown" style summary, or the status text. */
export function summarizeErrorBody(status: number, body: string): string {
  const errors = parseErrorBody(body);
  if (errors.length > 0) return errors.map((e) => e.message || e.code).join('; ');
  const text = body.trim().split('\n')[0]?.slice(0, 200);
  return text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
}
