#!/usr/bin/env node
// The vfs storage driver's copy of an image (src/rootfs/vfs-copy.ts), run in the user namespace
// for every container on vfs: started from its bundle with a code cache, as nook itself (see launcher.cts).
import { launch } from './launcher.cjs';

launch('vfs-copy').catch((error: unknown) => {
  process.stderr.write(`vfs copy: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
