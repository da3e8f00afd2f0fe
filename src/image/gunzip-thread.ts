/**
 * gunzip in a worker thread (./gunzip-worker.ts). zlib's streams already
 * inflate on libuv's thread pool, but each step is started from the main
 * thread's event loop: while the main thread is busy writing a layer's files,
 * inflating stands still, and the two take turns on one core. A worker has
 * its own loop, so decompression runs ahead on the second core, a bounded
 * window ahead of the writer.
 */
import { Worker } from 'node:worker_threads';
import { NookError } from '../lib/errors.js';
import type { GrowingFile } from './growing-file.js';
import type { FromGunzipWorker, ToGunzipWorker } from './gunzip-worker.js';
import { gunzipWorkerFile, takePrestartedGunzipWorker } from './worker-file.cjs';

/** How far (bytes of output) the worker may run ahead of the consumer. */
const WINDOW = 8 * 1024 * 1024;

/**
 * The inflated content of the gzip file at `path` (complete, or growing as
 * `file` says); once it has ended, `hashed.sha256` is the hex sha256 of all of it.
 */
export async function* gunzipInThread(path: string, file: GrowingFile, what: string, hashed: { sha256?: string } = {}): AsyncGenerator<Buffer> {
  // started ahead by the extraction helper's entry point (./worker-file.cts), or now
  const worker = takePrestartedGunzipWorker() ?? new Worker(gunzipWorkerFile());
  worker.ref();
  worker.postMessage({ start: { path, window: WINDOW } } satisfies ToGunzipWorker);
  // the current state at once (queued on the port until the worker listens), then every change
  const stopFollowing = file.follow((event) => worker.postMessage({ growth: event } satisfies ToGunzipWorker));

  const queue: FromGunzipWorker[] = [];
  let wake: (() => void) | undefined;
  const push = (message: FromGunzipWorker) => {
    queue.push(message);
    wake?.();
    wake = undefined;
  };
  worker.on('message', push);
  worker.on('error', (error) => push({ error: error.message, inInput: false }));
  worker.on('exit', (code) => push({ error: `the decompression thread exited (${code})`, inInput: false }));
  try {
    for (;;) {
      if (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const message = queue.shift()!;
      if ('end' in message) {
        hashed.sha256 = message.sha256;
        return;
      }
      if ('error' in message) throw new NookError(message.inInput ? `${what}: ${message.error}` : `${what}: corrupt gzip data (${message.error})`);
      const chunk = Buffer.from(message.chunk.buffer, message.chunk.byteOffset, message.chunk.byteLength);
      yield chunk;
      worker.postMessage({ taken: chunk.length } satisfies ToGunzipWorker);
    }
  } finally {
    stopFollowing();
    worker.removeAllListeners();
    await worker.terminate();
  }
}
