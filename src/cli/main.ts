#!/usr/bin/env node
// `nook`: the command line is src/cli/program.ts; see launcher.ts for why it starts this way.
import { launch } from './launcher.js';

await launch('program');
