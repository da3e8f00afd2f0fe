/**
 * Starts one of nook's command-line programs from its bundle, compiled from
 * V8's code cache.
 *
 * Why: `run` and `exec` are latency-critical, and as separate ES modules the
 * start path is ~70 files that Node resolves, reads and compiles one by one
 * (~80 ms, more than Node's own start). `npm run build` therefore bundles each
 * program into one CommonJS file (scripts/bundle-cli.mjs), and this launcher
 * compiles it with a code cache that V8 wrote on an earlier run: no
 * resolution, no parsing, and the functions that earlier run compiled come
 * back compiled. CommonJS because only a classic script (vm.Script) can be
 * given a code cache on Node 20; Node 22's module compile cache would do the
 * same for ES modules.
 *
 * The cache lives in the user's cache directory, named after the bundle's
 * size, modification time and Node's version: V8 itself checks only the
 * source's length, so a rebuilt bundle must never meet an old cache. A
 * missing or rejected cache is written when the process exits, once.
 *
 * Without a bundle, or with a bundle older than tsc's output (someone ran
 * `tsc` alone after changing the sources), the program's modules are
 * imported as they are.
 *
 * The launcher itself is CommonJS (.cts): an ES module entry point would
 * start Node's ES module loader, and its thread pool for reading files, for
 * nothing.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

export type ProgramName = 'program' | 'runtime-program';

export async function launch(name: ProgramName): Promise<void> {
  const here = __dirname;
  const bundlePath = join(here, `${name}.bundle.cjs`);
  const bundle = freshBundle(bundlePath, join(here, `${name}.js`));
  if (!bundle || process.env.NOOK_NO_BUNDLE) {
    await import(`./${name}.js`);
    return;
  }

  const cachePath = codeCachePath(name, bundle);
  let cachedData: Buffer | undefined;
  try {
    cachedData = cachePath ? readFileSync(cachePath) : undefined;
  } catch {
    cachedData = undefined;
  }
  const script = new Script(Module.wrap(readFileSync(bundlePath, 'utf8')), {
    filename: bundlePath,
    ...(cachedData ? { cachedData } : {}),
  });
  if (cachePath && (!cachedData || script.cachedDataRejected)) {
    process.once('exit', () => writeCodeCache(cachePath, `${name}-`, script));
  }
  const wrapper = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  const module = { exports: {} };
  wrapper(module.exports, createRequire(bundlePath), module, bundlePath, here);
}

interface BundleStamp {
  size: number;
  mtimeMs: number;
}

function freshBundle(bundlePath: string, entryPath: string): BundleStamp | undefined {
  try {
    const bundle = statSync(bundlePath);
    if (bundle.mtimeMs < statSync(entryPath).mtimeMs) return undefined;
    return { size: bundle.size, mtimeMs: bundle.mtimeMs };
  } catch {
    return undefined;
  }
}

function codeCachePath(name: ProgramName, bundle: BundleStamp): string | undefined {
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, '.cache') : safeHomedir());
  if (!base) return undefined;
  const stamp = `${bundle.size}-${Math.trunc(bundle.mtimeMs)}-${process.version}-${process.arch}`;
  return join(base, 'nook', 'code-cache', `${name}-${stamp}.bin`);
}

function safeHomedir(): string | undefined {
  try {
    return join(homedir(), '.cache');
  } catch {
    return undefined;
  }
}

/** Best effort: a cache that cannot be written only costs the next start its speed. */
function writeCodeCache(cachePath: string, prefix: string, script: Script): void {
  try {
    const dir = dirname(cachePath);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Caches of earlier builds of the same program can never be used again.
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(prefix) && join(dir, entry) !== cachePath) unlinkSync(join(dir, entry));
    }
    const temporary = `${cachePath}.${process.pid}.tmp`;
    writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
    renameSync(temporary, cachePath);
  } catch {
    // read-only home, full disk, a race with another nook: start without a cache next time
  }
}
