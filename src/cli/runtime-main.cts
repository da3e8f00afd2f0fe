#!/usr/bin/env node
// `nook-runtime`: the command line is src/cli/runtime-program.ts; see launcher.cts for why it starts this way.
import { launch } from './launcher.cjs';

launch('runtime-program').catch((error: unknown) => {
  process.stderr.write(`nook-runtime: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 125;
});
