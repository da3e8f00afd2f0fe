/**
 * The launcher (src/cli/launcher.cts) starts a program from its bundle with a
 * V8 code cache, and from its modules when the bundle is missing or older
 * than tsc's output. Checked on a throwaway program in a temporary directory,
 * and on the real nook.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cliDir = fileURLToPath(new URL('../../src/cli/', import.meta.url));

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nook-launcher-'));
  for (const file of ['launcher.cjs', 'command-word.cjs']) copyFileSync(join(cliDir, file), join(dir, file));
  writeFileSync(join(dir, 'main.cjs'), "require('./launcher.cjs').launch('program');\n");
  writeFileSync(join(dir, 'program.js'), "console.log('modules');\n");
  writeFileSync(join(dir, 'program.bundle.cjs'), "console.log('bundle', typeof require, __filename.endsWith('program.bundle.cjs'));\n");
  return dir;
}

function run(dir: string, cache: string, env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, [join(dir, 'main.cjs')], { env: { ...process.env, XDG_CACHE_HOME: cache, ...env }, encoding: 'utf8' }).trim();
}

test('a fresh bundle runs as CommonJS and leaves a code cache that the next start uses', (t) => {
  const dir = scratch();
  const cache = join(dir, 'cache');
  try {
    t.is(run(dir, cache), 'bundle function true');
    const cacheDir = join(cache, 'nook', 'code-cache');
    const [file] = readdirSync(cacheDir);
    t.truthy(file?.startsWith('program-'));
    const written = statSync(join(cacheDir, file!)).mtimeMs;
    t.is(run(dir, cache), 'bundle function true');
    // Accepted by V8, so not written again.
    t.is(statSync(join(cacheDir, file!)).mtimeMs, written);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache written by a cold command is used by cold commands only, and a hot command writes its own', (t) => {
  const dir = scratch();
  const cache = join(dir, 'cache');
  const cacheDir = join(cache, 'nook', 'code-cache');
  writeFileSync(join(dir, 'main.cjs'), "require('./launcher.cjs').launch('program', { hotCommands: ['run'], optionsWithValue: ['--root'] });\n");
  const runWith = (...args: string[]) => execFileSync(process.execPath, [join(dir, 'main.cjs'), ...args], { env: { ...process.env, XDG_CACHE_HOME: cache }, encoding: 'utf8' }).trim();
  try {
    runWith('--root', 'run', 'images');
    t.deepEqual(readdirSync(cacheDir).map((f) => f.split('-').at(-1)), ['cold.bin']);
    const cold = statSync(join(cacheDir, readdirSync(cacheDir)[0]!)).mtimeMs;
    runWith('ps');
    t.is(statSync(join(cacheDir, readdirSync(cacheDir)[0]!)).mtimeMs, cold, 'a cold command uses the cold cache');
    runWith('--root', '/x', 'run', 'busybox');
    t.deepEqual(readdirSync(cacheDir).map((f) => f.split('-').at(-1)).sort(), ['cold.bin', 'hot.bin']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rebuilt bundle gets a new cache and the old one is removed', (t) => {
  const dir = scratch();
  const cache = join(dir, 'cache');
  try {
    run(dir, cache);
    writeFileSync(join(dir, 'program.bundle.cjs'), "console.log('bundle 2');\n");
    t.is(run(dir, cache), 'bundle 2');
    t.deepEqual(readdirSync(join(cache, 'nook', 'code-cache')).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundle older than the compiled modules, or none, or NOOK_NO_BUNDLE: the modules run', (t) => {
  const dir = scratch();
  const cache = join(dir, 'cache');
  try {
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'program.bundle.cjs'), old, old);
    t.is(run(dir, cache), 'modules');
    writeFileSync(join(dir, 'program.bundle.cjs'), "console.log('bundle');\n");
    t.is(run(dir, cache, { NOOK_NO_BUNDLE: '1' }), 'modules');
    rmSync(join(dir, 'program.bundle.cjs'));
    t.is(run(dir, cache), 'modules');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unwritable cache directory costs only the cache', (t) => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, 'not-a-dir'), '');
    t.is(run(dir, join(dir, 'not-a-dir')), 'bundle function true');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the build bundled nook, nook-runtime, the extraction helper and its thread, and they start from their bundles', (t) => {
  for (const program of ['program', 'runtime-program']) {
    t.true(statSync(join(cliDir, `${program}.bundle.cjs`)).mtimeMs >= statSync(join(cliDir, `${program}.js`)).mtimeMs, `${program} bundle is fresh`);
    // the launcher reads bundles as latin1
    t.false(readFileSync(join(cliDir, `${program}.bundle.cjs`)).some((byte) => byte > 0x7f), `${program} bundle is ASCII`);
  }
  for (const helper of ['extract-main', 'gunzip-worker']) {
    t.true(statSync(join(cliDir, `${helper}.bundle.cjs`)).mtimeMs >= statSync(join(cliDir, '..', 'image', `${helper}.js`)).mtimeMs, `${helper} bundle is fresh`);
  }
  const cache = mkdtempSync(join(tmpdir(), 'nook-launcher-cache-'));
  try {
    t.is(execFileSync(process.execPath, [join(cliDir, 'main.cjs'), '--version'], { env: { ...process.env, XDG_CACHE_HOME: cache }, encoding: 'utf8' }).trim(), '0.1.0');
    t.regex(execFileSync(process.execPath, [join(cliDir, 'runtime-main.cjs'), '--version'], { env: { ...process.env, XDG_CACHE_HOME: cache }, encoding: 'utf8' }), /nook-runtime version/);
    // `--version` is not a hot command of nook's; every command of nook-runtime is.
    // the helper without a job says so on stdout, as a failed layer report, and leaves its own cache
    const helper = spawnSync(process.execPath, [join(cliDir, 'extract-main.cjs')], { input: '', env: { ...process.env, XDG_CACHE_HOME: cache }, encoding: 'utf8' });
    t.is(helper.stdout.trim(), JSON.stringify({ index: -1, ok: false, message: 'no job on standard input' }));
    t.deepEqual(readdirSync(join(cache, 'nook', 'code-cache')).map((f) => `${f.split('-').slice(0, -5).join('-')} ${f.split('-').at(-1)}`).sort(), ['extract-main hot.bin', 'program cold.bin', 'runtime-program hot.bin']);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test("every path built from import.meta.url goes through a parent directory, so it resolves the same from the bundle in dist/src/cli/", (t) => {
  const srcDir = fileURLToPath(new URL('../../../src/', import.meta.url));
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.c?ts$/.test(entry.name)) {
        for (const match of readFileSync(path, 'utf8').matchAll(/new URL\((['"`])([^'"`]*)\1,\s*import\.meta\.url\)/g)) {
          if (!match[2]!.startsWith('../')) offenders.push(`${path.slice(srcDir.length)}: ${match[2]}`);
        }
      }
    }
  };
  walk(srcDir);
  t.deepEqual(offenders, []);
});
