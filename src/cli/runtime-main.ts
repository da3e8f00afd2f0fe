#!/usr/bin/env node
// `nook-runtime`: the command line is src/cli/runtime-program.ts; see launcher.ts for why it starts this way.
import { launch } from './launcher.js';

await launch('runtime-program');
