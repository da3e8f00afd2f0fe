/**
 * Downloading one blob into a partial file, hashing while writing. The
 * partial file is the resumable state: a pull that was interrupted (network
 * reset, Ctrl-C, crash) leaves it, and the next one hashes what is there and
 * asks only for the rest (HTTP Range). The file is complete only when its
 * size and sha256 match the descriptor; a mismatch deletes it and fails
 * naming the digest. The caller must hold a lock on the partial file (two
 * writers would interleave) and moves it into the store when this resolves.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errnoCode } from '../../lib/errors.js';
import { openBlob } from './client.js';
import { RegistryError, isRegistryError } from './errors.js';
import type { Descriptor } from './manifest.js';
import type { RegistrySession } from './session.js';
import { abortReason } from './transport.js';

export interface BlobDownload {
  session: RegistrySession;
  descriptor: Descriptor;
  partialPath: string;
  /** bytes of the blob present so far (called with the resumed offset first) */
  onProgress?: ((bytes: number) => void) | undefined;
  /** tries after an interruption that brought no new bytes (default 5) */
  attempts?: number;
  signal?: AbortSignal | undefined;
}

/** Errors of a broken connection in the middle of a body: resume from where it stopped. */
const INTERRUPTED = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

async function hashExisting(path: string, length: number, hash: Hash): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
}

/** Resolves once `partialPath` holds the whole blob, verified and fsynced. */
export async function downloadBlob(job: BlobDownload): Promise<void> {
  const { descriptor, session, partialPath } = job;
  await mkdir(dirname(partialPath), { recursive: true, mode: 0o700 });
  let file = await open(partialPath, 'a+', 0o644);
  const first = await file.stat();
  if (first.nlink > 1 && first.size !== descriptor.size) {
    // A complete download already linked into the store: never write into that inode.
    await file.close();
    await rm(partialPath, { force: true });
    file = await open(partialPath, 'a+', 0o644);
  }
  try {
    const hash = createHash('sha256');
    let have = (await file.stat()).size;
    if (have > descriptor.size) {
      await file.truncate(0);
      have = 0;
    }
    await hashExisting(partialPath, have, hash);
    job.onProgress?.(have);
    const maxIdleAttempts = job.attempts ?? 5;
    let idleAttempts = 0;
    while (have < descriptor.size) {
      job.signal?.throwIfAborted();
      const before = have;
      try {
        const { body, start } = await openBlob(session, descriptor.digest, have);
        // The registry ignored Range and sends everything again: what is on disk
        // stays (the file never shrinks under a reader, see ../growing-file.ts)
        // and the bytes already there are skipped; the digest still covers the whole file.
        const state = { have, skip: have - start };
        try {
          await appendBody(body, file, hash, state, descriptor, session, job);
        } finally {
          // what was written stays written, even when the connection broke
          have = state.have;
        }
      } catch (error) {
        if (job.signal?.aborted) throw abortReason(job.signal);
        if (isRegistryError(error) || !INTERRUPTED.has(errnoCode(error) ?? '')) throw error;
        idleAttempts = have > before ? 0 : idleAttempts + 1;
        if (idleAttempts >= maxIdleAttempts) throw session.transport.describe(error, new URL(`https://${session.host}`));
        session.transport.log(`download of ${descriptor.digest} interrupted at ${have}/${descriptor.size} bytes (${errnoCode(error)}); resuming`);
        continue;
      }
      if (have < descriptor.size) {
        // the body ended early without an error: resume like after a reset
        idleAttempts = have > before ? 0 : idleAttempts + 1;
        if (idleAttempts >= maxIdleAttempts) throw new RegistryError('server', `${session.host} keeps ending the download of ${descriptor.digest} early (${have} of ${descriptor.size} bytes)`);
      }
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== descriptor.digest) {
      throw new RegistryError('digest', `blob ${descriptor.digest} from ${session.host}/${session.repository} does not match its digest (the content is ${digest}); nothing of it was stored`);
    }
    await file.sync();
  } catch (error) {
    // Wrong content must not be resumed from: the next try starts clean.
    if (isRegistryError(error, 'digest')) {
      await file.close().catch(() => {});
      await rm(partialPath, { force: true });
    }
    throw error;
  } finally {
    await file.close().catch(() => {});
  }
}

/** Bytes gathered before one write: TLS delivers 16 KiB records, and a write per record costs more than the copy. */
const WRITE_BATCH = 1024 * 1024;

async function appendBody(
  body: AsyncIterable<unknown> & { destroy(): void },
  file: FileHandle,
  hash: Hash,
  state: { have: number; skip: number },
  descriptor: Descriptor,
  session: RegistrySession,
  job: BlobDownload,
): Promise<void> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  // `state.have` counts bytes on disk, which the hash has seen: the two must agree for a resume.
  const writeOut = async () => {
    if (pendingBytes === 0) return;
    // writev: no copy of the TLS records into one buffer (copies and garbage were a tenth of a pull's CPU)
    const buffers = pending;
    const total = pendingBytes;
    pending = [];
    pendingBytes = 0;
    let written = (await file.writev(buffers)).bytesWritten;
    if (written < total) {
      const rest = Buffer.concat(buffers, total);
      while (written < total) written += (await file.write(rest, written, total - written)).bytesWritten;
    }
    for (const buffer of buffers) hash.update(buffer);
    state.have += total;
    job.onProgress?.(state.have);
  };
  // Writes are chained so that the timer's and the loop's never interleave.
  let writing: Promise<void> = Promise.resolve();
  const flush = () => (writing = writing.then(writeOut));
  // A slow or stalled connection still gets its bytes to disk (and to the progress bar) soon.
  const timer = setInterval(() => void flush().catch(() => undefined), 250);
  try {
    for await (const raw of body) {
      let chunk = raw as Buffer;
      if (state.skip > 0) {
        const skipped = Math.min(state.skip, chunk.length);
        state.skip -= skipped;
        chunk = chunk.subarray(skipped);
        if (chunk.length === 0) continue;
      }
      if (state.have + pendingBytes + chunk.length > descriptor.size) {
        throw new RegistryError('digest', `blob ${descriptor.digest} from ${session.host}/${session.repository} is larger than the ${descriptor.size} bytes its manifest says; nothing of it was stored`);
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BATCH) await flush();
      job.signal?.throwIfAborted();
    }
    await flush();
  } catch (error) {
    body.destroy();
    // what arrived before a broken connection is kept for the resume (not after wrong content)
    if (!isRegistryError(error, 'digest')) await flush();
    throw error;
  } finally {
    clearInterval(timer);
  }
}
