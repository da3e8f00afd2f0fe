/**
 * The worker thread of ./gunzip-thread.ts: reads a gzip file (possibly still
 * growing, see ./growing-file.ts), inflates it and posts the output in
 * batches of about 1 MiB, at most `window` bytes ahead of what the main
 * thread has taken, and the sha256 of the output (a layer's diff id) at the
 * end: hashing here rather than on the main thread takes it off the writer's core too. A worker's event loop does not wait for the main
 * thread's, so inflating goes on while the main thread writes files.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import { GrowingFile, type GrowthEvent } from './growing-file.js';

export interface GunzipWorkerData {
  path: string;
  /** bytes posted but not yet taken by the main thread before inflating pauses */
  window: number;
}

/** main thread -> worker: `start` first (the worker may be started before its file is known), then the others */
export type ToGunzipWorker = { start: GunzipWorkerData } | { growth: GrowthEvent } | { taken: number };
/** worker -> main thread */
export type FromGunzipWorker = { chunk: Uint8Array } | { end: true; sha256: string } | { error: string; inInput: boolean };

const BATCH = 1024 * 1024;

const port = parentPort!;
// its state arrives as messages, the first one at once (see gunzipInThread)
const file = new GrowingFile();
let outstanding = 0;
let windowBytes = Infinity;
let resume: (() => void) | undefined;
port.on('message', (message: ToGunzipWorker) => {
  if ('start' in message) {
    windowBytes = message.start.window;
    void main(message.start);
  } else if ('growth' in message) file.apply(message.growth);
  else {
    outstanding -= message.taken;
    if (outstanding < windowBytes && resume) {
      resume();
      resume = undefined;
    }
  }
});

async function main(data: GunzipWorkerData): Promise<void> {
  // 1 MiB output buffers: a quarter of the hand-offs to libuv's pool and of the buffers to map
  // and fault in than with 256 KiB (~0.1 s less CPU for a 120 MB layer)
  const gunzip = createGunzip({ chunkSize: BATCH });
  let inputError: Error | undefined;
  const input = (async () => {
    try {
      for await (const chunk of file.read(data.path)) {
        if (!gunzip.write(chunk)) await new Promise((resolve) => gunzip.once('drain', resolve));
      }
      gunzip.end();
    } catch (error) {
      inputError = error as Error;
      gunzip.destroy(inputError);
    }
  })();

  const hash = createHash('sha256');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const post = async () => {
    if (pendingBytes === 0) return;
    // A buffer of its own, so that it can be transferred rather than copied: zlib's own output
    // buffer when one chunk fills it all (zlib has moved on to a new one), else a copy.
    const single = pending.length === 1 ? pending[0]! : undefined;
    let batch: Buffer;
    if (single && single.byteOffset === 0 && single.byteLength === single.buffer.byteLength) batch = single;
    else {
      batch = Buffer.allocUnsafeSlow(pendingBytes);
      let offset = 0;
      for (const part of pending) offset += part.copy(batch, offset);
    }
    pending = [];
    outstanding += pendingBytes;
    pendingBytes = 0;
    const chunk = new Uint8Array(batch.buffer, 0, batch.length);
    port.postMessage({ chunk } satisfies FromGunzipWorker, [batch.buffer as ArrayBuffer]);
    if (outstanding >= data.window) await new Promise<void>((resolve) => (resume = resolve));
  };
  try {
    for await (const chunk of gunzip) {
      hash.update(chunk as Buffer);
      pending.push(chunk as Buffer);
      pendingBytes += (chunk as Buffer).length;
      // also whenever zlib has nothing more for now: a download that stalls must not hold back what arrived
      if (pendingBytes >= BATCH || gunzip.readableLength === 0) await post();
    }
    await post();
    await input;
  } catch (error) {
    const failure = inputError ?? (error as Error);
    port.postMessage({ error: failure.message, inInput: failure === inputError } satisfies FromGunzipWorker);
    return;
  }
  port.postMessage({ end: true, sha256: hash.digest('hex') } satisfies FromGunzipWorker);
}

