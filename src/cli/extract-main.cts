#!/usr/bin/env node
// The layer extraction helper (src/image/extract-main.ts), run in the user namespace for every
// pull and load: started from its bundle with a code cache, as nook itself (see launcher.cts).
import { prestartGunzipWorker } from '../image/worker-file.cjs';
import { launch } from './launcher.cjs';

// A first layer said to be gzip (nearly every pulled one; the parent says so): its decompression
// thread starts before the helper's code is loaded, and is ready when the first bytes are
// (src/image/worker-file.cts).
if (process.argv.includes('--prestart-gunzip')) {
  try {
    prestartGunzipWorker();
  } catch {
    // only a matter of speed: gunzipInThread starts one itself
  }
}

launch('extract-main').catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ index: -1, ok: false, message: `the extraction helper cannot start: ${error instanceof Error ? error.message : String(error)}` })}\n`);
  process.exitCode = 1;
});
