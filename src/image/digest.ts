/**
 * Content digests ("sha256:<64 hex>"), the names of everything in the store.
 * Only sha256 is accepted for content nook stores or verifies; other
 * algorithms are recognised in references so the error can say so.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { NookError } from '../lib/errors.js';

export type Digest = `sha256:${string}`;

const sha256Pattern = /^sha256:[a-f0-9]{64}$/;
const anyDigestPattern = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

export function isDigest(value: string): value is Digest {
  return sha256Pattern.test(value);
}

/** Validates a digest from untrusted input (a manifest, a file name, a flag). */
export function parseDigest(value: string, what = 'digest'): Digest {
  if (isDigest(value)) return value;
  if (anyDigestPattern.test(value)) {
    const algorithm = value.slice(0, value.indexOf(':'));
    throw new NookError(`${what} ${JSON.stringify(value)} uses ${algorithm}: only sha256 digests are supported`);
  }
  throw new NookError(`${what} ${JSON.stringify(truncate(value))} is not a valid digest (expected sha256:<64 hex digits>)`);
}

/** The 64 hex digits of a digest, used as file names in the store. */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function sha256Of(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * A pass-through stream that hashes and counts what flows through it; read
 * `digest()` and `size` after it has ended.
 */
export class DigestStream extends Transform {
  size = 0;
  private readonly hash: Hash = createHash('sha256');
  private result: Digest | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = `sha256:${this.hash.digest('hex')}`;
    callback();
  }

  digest(): Digest {
    if (!this.result) throw new Error('DigestStream.digest() read before the stream ended');
    return this.result;
  }
}

/** A short form for messages: sha256:0123456789ab. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 'sha256:'.length + 12) : digest.slice(0, 12);
}

function truncate(value: string, max = 80): string {
  return value.length > max ? `${value.slice(0, max)}...` : value;
}
