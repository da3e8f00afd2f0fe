/**
 * The extraction helper's worker threads: which file one starts from, and
 * starting one ahead of its use.
 *
 * A worker starts from its esbuild bundle in dist/src/cli/
 * (scripts/bundle-cli.mjs), one file to compile instead of an ES module
 * graph to resolve on every layer's critical path; from the module itself in
 * a checkout without a bundle, or with one older than tsc's output, or with
 * NOOK_NO_BUNDLE (the rule of the CLI's launcher).
 *
 * CommonJS, so that the helper's entry point (src/cli/extract-main.cts) can
 * start the decompression thread before it loads the helper's own code: a
 * worker's start (a V8 isolate and Node's bootstrap) is 30 to 80 ms. The
 * thread started then is handed over through globalThis, since the entry
 * point and the helper's bundle each have their own copy of this module.
 */
import { statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

export function workerFile(module: URL, bundle: URL): URL {
  if (process.env.NOOK_NO_BUNDLE) return module;
  try {
    if (statSync(bundle).mtimeMs >= statSync(module).mtimeMs) return bundle;
  } catch {
    // no bundle
  }
  return module;
}

/** The decompression thread's file (./gunzip-worker.ts), from dist/src/image/ or from a bundle in dist/src/cli/ alike. */
export function gunzipWorkerFile(): URL {
  const here = pathToFileURL(__filename);
  return workerFile(new URL('../image/gunzip-worker.js', here), new URL('../cli/gunzip-worker.bundle.cjs', here));
}

const prestartedKey = Symbol.for('nook.prestartedGunzipWorker');
type WithPrestarted = typeof globalThis & { [prestartedKey]?: Worker };

/** Starts the decompression thread of the next gunzipInThread (./gunzip-thread.ts) now; unused, it ends with the process. */
export function prestartGunzipWorker(): void {
  const global = globalThis as WithPrestarted;
  if (global[prestartedKey]) return;
  const worker = new Worker(gunzipWorkerFile());
  worker.unref();
  global[prestartedKey] = worker;
}

/** The thread prestartGunzipWorker started, once. */
export function takePrestartedGunzipWorker(): Worker | undefined {
  const global = globalThis as WithPrestarted;
  const worker = global[prestartedKey];
  delete global[prestartedKey];
  return worker;
}
