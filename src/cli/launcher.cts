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
import { commandWord } from './command-word.cjs';

/** Each program's compiled entry module, relative to this directory; its bundle is NAME.bundle.cjs here (scripts/bundle-cli.mjs makes them from this list). */
export const programEntries = {
  program: './program.js',
  'runtime-program': './runtime-program.js',
  // the layer extraction helper, started for every pull and load (src/image/extract.ts)
  'extract-main': '../image/extract-main.js',
  // the vfs storage driver's copy of an image, started for every container on vfs (src/rootfs/driver.ts)
  'vfs-copy': '../rootfs/vfs-copy.js',
} as const;

export type ProgramName = keyof typeof programEntries;

export interface LaunchOptions {
  /**
   * The latency-critical commands. V8's cache holds the functions that the
   * run which wrote it compiled, so a cache written by `nook images` would
   * leave `nook run` compiling its own (~10 ms): a hot command replaces a
   * cache written by any other. Absent: every command is hot.
   */
  hotCommands?: readonly string[];
  /** global options that take a value (skipped when looking for the command word) */
  optionsWithValue?: readonly string[];
}

export async function launch(name: ProgramName, options: LaunchOptions = {}): Promise<void> {
  const here = __dirname;
  const bundlePath = join(here, `${name}.bundle.cjs`);
  const bundle = freshBundle(bundlePath, join(here, programEntries[name]));
  if (!bundle || process.env.NOOK_NO_BUNDLE) {
    await import(programEntries[name]);
    return;
  }

  const cache = codeCachePaths(name, bundle);
  const hot = isHotCommand(process.argv.slice(2), options);
  const found = cache && (readOrUndefined(cache.hot) ?? (hot ? undefined : readOrUndefined(cache.cold)));
  // latin1: the bundle is ASCII (esbuild escapes everything else), and decoding
  // 1 MB as UTF-8 costs ~2 ms more on every start.
  const script = new Script(Module.wrap(readFileSync(bundlePath, 'latin1')), {
    filename: bundlePath,
    ...(found ? { cachedData: found } : {}),
  });
  if (cache && (!found || script.cachedDataRejected)) {
    process.once('exit', () => writeCodeCache(hot ? cache.hot : cache.cold, `${name}-`, cache.stamp, script));
  }
  const wrapper = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  const module = { exports: {} };
  wrapper(module.exports, createRequire(bundlePath), module, bundlePath, here);
}

function isHotCommand(args: readonly string[], options: LaunchOptions): boolean {
  if (!options.hotCommands) return true;
  const word = commandWord(args, options.optionsWithValue ?? []);
  return word !== undefined && options.hotCommands.includes(word);
}

function readOrUndefined(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
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

interface CachePaths {
  /** written by a hot command */
  hot: string;
  /** written by any other, used by those only */
  cold: string;
  /** what names this bundle's caches; any other cache of the program is stale */
  stamp: string;
}

function codeCachePaths(name: ProgramName, bundle: BundleStamp): CachePaths | undefined {
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, '.cache') : safeHomedir());
  if (!base) return undefined;
  const stamp = `${bundle.size}-${Math.trunc(bundle.mtimeMs)}-${process.version}-${process.arch}`;
  const dir = join(base, 'nook', 'code-cache');
  return { hot: join(dir, `${name}-${stamp}-hot.bin`), cold: join(dir, `${name}-${stamp}-cold.bin`), stamp };
}

function safeHomedir(): string | undefined {
  try {
    return join(homedir(), '.cache');
  } catch {
    return undefined;
  }
}

/** Best effort: a cache that cannot be written only costs the next start its speed. */
function writeCodeCache(cachePath: string, prefix: string, stamp: string, script: Script): void {
  try {
    const dir = dirname(cachePath);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Caches of earlier builds of the same program can never be used again.
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(prefix) && !entry.startsWith(`${prefix}${stamp}-`)) unlinkSync(join(dir, entry));
    }
    const temporary = `${cachePath}.${process.pid}.tmp`;
    writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
    renameSync(temporary, cachePath);
  } catch {
    // read-only home, full disk, a race with another nook: start without a cache next time
  }
}
