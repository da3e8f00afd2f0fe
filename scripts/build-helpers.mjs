#!/usr/bin/env node
/**
 * Builds nook's C helpers: every helpers/NAME.c becomes dist/helpers/NAME.
 *
 * Linked statically when the C library allows it (glibc's libc.a, musl): a
 * static executor starts faster (no dynamic loader) and its monitor, which
 * stays alive as long as a detached container, keeps a smaller resident set.
 * Falls back to dynamic linking. Skips a helper that is newer than its
 * source. Environment: CC (default cc), NOOK_HELPERS_CFLAGS (extra flags).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'helpers');
const outputDir = join(root, 'dist', 'helpers');
const cc = process.env.CC || 'cc';
const baseFlags = ['-std=c11', '-O2', '-Wall', '-Wextra', ...(process.env.NOOK_HELPERS_CFLAGS ?? '').split(/\s+/).filter(Boolean)];

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function hasCompiler() {
  const probe = spawnSync(cc, ['--version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
}

function compile(source, output) {
  const tmp = `${output}.tmp-${process.pid}`;
  const attempts = [['-static'], []];
  let lastError = '';
  for (const extra of attempts) {
    try {
      execFileSync(cc, [...baseFlags, ...extra, '-o', tmp, source], { stdio: ['ignore', 'inherit', 'pipe'] });
      renameSync(tmp, output);
      return extra.length ? 'static' : 'dynamic';
    } catch (error) {
      lastError = error.stderr?.toString() ?? String(error);
      rmSync(tmp, { force: true });
    }
  }
  throw new Error(`compiling ${source} failed:\n${lastError}`);
}

const sources = readdirSync(sourceDir).filter((name) => name.endsWith('.c'));
const stale = sources.filter((name) => {
  const output = join(outputDir, name.slice(0, -2));
  return mtime(output) < Math.max(mtime(join(sourceDir, name)), mtime(fileURLToPath(import.meta.url)));
});
if (stale.length === 0) process.exit(0);

if (!hasCompiler()) {
  console.error(
    `build-helpers: no C compiler ("${cc}") found: nook's executor is a small C program.\n` +
      'Install one (Debian/Ubuntu: apt-get install gcc libc6-dev; Fedora: dnf install gcc glibc-static) or set CC.',
  );
  process.exit(1);
}
mkdirSync(outputDir, { recursive: true });
try {
  for (const name of stale) {
    const output = join(outputDir, name.slice(0, -2));
    const linkage = compile(join(sourceDir, name), output);
    console.log(`build-helpers: ${name} -> dist/helpers/${name.slice(0, -2)} (${linkage})`);
  }
} catch (error) {
  console.error(`build-helpers: ${error.message}`);
  process.exit(1);
}
