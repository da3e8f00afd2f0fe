/**
 * Decompressing blobs and tarballs, recognised by their first bytes rather
 * than trusted file names or media types (a "layer.tar" may well be gzip).
 * gzip is done in-process; zstd, xz and bzip2 (Node 20 has none of them) by
 * the usual programs when installed, with a clear message when they are not.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, openSync, readSync, closeSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { NookError } from '../lib/errors.js';
import type { GrowingFile } from './growing-file.js';

export type DetectedCompression = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'none';

export function detectCompression(head: Buffer): DetectedCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

export function detectFileCompression(path: string): DetectedCompression {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    const n = readSync(fd, head, 0, 8, 0);
    return detectCompression(head.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

const programs: Record<Exclude<DetectedCompression, 'gzip' | 'none'>, string> = { zstd: 'zstd', xz: 'xz', bzip2: 'bzip2' };

/** The uncompressed content of the file at `path`, whatever its compression. */
export function openDecompressed(path: string, what: string): { stream: Readable; compression: DetectedCompression } {
  const compression = detectFileCompression(path);
  if (compression === 'none') return { stream: createReadStream(path), compression };
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    const source = createReadStream(path);
    source.on('error', (error) => gunzip.destroy(error));
    gunzip.on('error', () => source.destroy());
    const out = new PassThrough();
    gunzip.on('error', (error) => out.destroy(new NookError(`${what}: corrupt gzip data (${error.message})`, { cause: error })));
    source.pipe(gunzip).pipe(out);
    return { stream: out, compression };
  }
  return { stream: decompressWithProgram(path, compression, what), compression };
}

export interface DecompressedContent {
  chunks: AsyncGenerator<Buffer>;
  /** "sha256:..." of everything `chunks` yielded, once it has ended */
  digest(): string;
}

/**
 * The uncompressed content of a file that may still be growing (a blob being
 * downloaded, ./growing-file.ts), read as it grows, with its digest: gzip is
 * inflated and hashed in a worker thread (./gunzip-thread.ts), other formats
 * are decompressed by their program fed through a pipe.
 */
export function readDecompressed(path: string, file: GrowingFile, what: string): DecompressedContent {
  const hashed: { sha256?: string } = {};
  const chunks = (async function* () {
    await file.waitFor(8);
    const head = Buffer.alloc(8);
    const fd = openSync(path, 'r');
    let n: number;
    try {
      n = readSync(fd, head, 0, Math.min(8, file.available), 0);
    } finally {
      closeSync(fd);
    }
    const compression = detectCompression(head.subarray(0, n));
    if (compression === 'gzip') {
      const { gunzipInThread } = await import('./gunzip-thread.js');
      yield* gunzipInThread(path, file, what, hashed);
      return;
    }
    const hash = createHash('sha256');
    const source = compression === 'none' ? file.read(path) : (decompressWithProgram(Readable.from(file.read(path)), compression, what) as AsyncIterable<Buffer>);
    for await (const chunk of source) {
      hash.update(chunk);
      yield chunk;
    }
    hashed.sha256 = hash.digest('hex');
  })();
  return {
    chunks,
    digest: () => {
      if (hashed.sha256 === undefined) throw new Error('the digest of decompressed content was read before its end');
      return `sha256:${hashed.sha256}`;
    },
  };
}

function decompressWithProgram(source: string | Readable, compression: Exclude<DetectedCompression, 'gzip' | 'none'>, what: string): Readable {
  const program = programs[compression];
  const out = new PassThrough();
  const fromFile = typeof source === 'string';
  const child = spawn(program, fromFile ? ['-dc', '--', source] : ['-dc'], { stdio: [fromFile ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (!fromFile) {
    child.stdin!.on('error', () => undefined); // the program's own failure is reported below
    source.on('error', (error) => out.destroy(error));
    source.pipe(child.stdin!);
    out.on('close', () => source.destroy());
  }
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString();
  });
  child.on('error', (error: NodeJS.ErrnoException) => {
    const message = error.code === 'ENOENT' ? `${what} is ${compression}-compressed and the ${program} program is not installed (install ${program})` : `${what}: cannot run ${program}: ${error.message}`;
    out.destroy(new NookError(message, { cause: error }));
  });
  child.stdout!.pipe(out, { end: false });
  child.on('close', (code) => {
    if (code === 0) out.end();
    else if (!out.destroyed) out.destroy(new NookError(`${what}: corrupt ${compression} data (${program}: ${stderr.trim().split('\n')[0] ?? `exit ${code}`})`));
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return out;
}
