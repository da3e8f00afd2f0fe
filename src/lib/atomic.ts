/**
 * Atomic file replacement: write a temporary file next to the target, fsync,
 * rename over the target. Readers see the old content or the new, never a
 * half-written file, and a crash leaves at worst a stray `.tmp-*` file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { NookError } from './errors.js';

export interface AtomicWriteOptions {
  mode?: number;
  /** fsync the file and its directory (default true); off only for throwaway state */
  durable?: boolean;
}

/** A temporary name in the target's directory (same filesystem, so rename is atomic). */
export function temporarySibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  const tmp = temporarySibling(path);
  try {
    const fd = openSync(tmp, 'wx', options.mode ?? 0o644);
    try {
      const buffer = typeof data === 'string' ? Buffer.from(data) : data;
      let written = 0;
      while (written < buffer.length) written += writeSync(fd, buffer, written, buffer.length - written);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    if (durable) syncDirectory(dirname(path));
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new NookError(`cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}

export function writeJsonAtomic(path: string, value: unknown, options: AtomicWriteOptions = {}): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, options);
}

/** The parsed JSON at `path`, or `fallback` when the file does not exist. */
export function readJsonFile<T>(path: string, fallback: T): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw new NookError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new NookError(`${path} is corrupt (not valid JSON): ${(error as Error).message}`, { cause: error });
  }
}

/** fsync a directory so a rename into it survives a crash. */
export function syncDirectory(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories; the rename itself is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
