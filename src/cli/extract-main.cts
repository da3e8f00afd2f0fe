#!/usr/bin/env node
// The layer extraction helper (src/image/extract-main.ts), run in the user namespace for every
// pull and load: started from its bundle with a code cache, as nook itself (see launcher.cts).
import { launch } from './launcher.cjs';

launch('extract-main').catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ index: -1, ok: false, message: `the extraction helper cannot start: ${error instanceof Error ? error.message : String(error)}` })}\n`);
  process.exitCode = 1;
});
