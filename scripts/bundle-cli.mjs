#!/usr/bin/env node
/**
 * Bundles each command-line program (tsc's output) into one CommonJS file
 * next to it, which src/cli/launcher.ts starts with V8's code cache:
 *
 *   dist/src/cli/program.js          -> dist/src/cli/program.bundle.cjs          (nook)
 *   dist/src/cli/runtime-program.js  -> dist/src/cli/runtime-program.bundle.cjs  (nook-runtime)
 *   dist/src/image/extract-main.js   -> dist/src/cli/extract-main.bundle.cjs     (the layer extraction helper)
 *   dist/src/image/gunzip-worker.js  -> dist/src/cli/gunzip-worker.bundle.cjs    (its decompression thread,
 *                                       started as a file: no launcher, no code cache)
 *   dist/src/rootfs/vfs-copy.js      -> dist/src/cli/vfs-copy.bundle.cjs         (the vfs driver's copy)
 *
 * Everything is inside, dependencies too, except koffi (a native addon). The
 * library's lazy `import()`s become functions that initialise a module on
 * first use, so a command still runs only the code it needs.
 *
 * The bundle sits in dist/src/cli/, at the same depth as every module, so
 * that the library's `new URL('../../helpers/...', import.meta.url)` paths
 * resolve the same bundled or not.
 */
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cliDir = join(root, 'dist', 'src', 'cli');

// The launcher's own list (tsc has compiled it by now), and the decompression thread, which is
// started as a file rather than through the launcher.
const { programEntries } = createRequire(import.meta.url)(join(cliDir, 'launcher.cjs'));
const programs = {
  ...Object.fromEntries(Object.entries(programEntries).map(([name, entry]) => [name, join(cliDir, entry)])),
  'gunzip-worker': join(root, 'dist', 'src', 'image', 'gunzip-worker.js'),
};

for (const [program, entry] of Object.entries(programs)) {
  await build({
    entryPoints: [entry],
    outfile: join(cliDir, `${program}.bundle.cjs`),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['koffi'],
    // import() of Node's built-in modules becomes require(): a vm.Script
    // (the launcher) has no loader for import().
    supported: { 'dynamic-import': false },
    // CommonJS has no import.meta: give the modules the bundle's own URL.
    define: { 'import.meta.url': '__nook_import_meta_url' },
    banner: { js: "const __nook_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    // ASCII only (non-ASCII characters escaped): the launcher reads it as latin1.
    charset: 'ascii',
    // A third less to read and ~5 ms less to load from the code cache on every start; names
    // stay (stack traces with --debug keep them; NOOK_NO_BUNDLE=1 runs the modules themselves).
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
  });
}
