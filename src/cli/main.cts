#!/usr/bin/env node
// `nook`: the command line is src/cli/program.ts; see launcher.cts for why it starts this way.
import { globalOptionsWithValue } from './command-word.cjs';
import { launch } from './launcher.cjs';

launch('program', { hotCommands: ['run', 'exec', 'start', 'create'], optionsWithValue: globalOptionsWithValue }).catch((error: unknown) => {
  process.stderr.write(`nook: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 125;
});
