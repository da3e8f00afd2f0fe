import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { acquireLock, tryLock, withLock } from '../../src/lib/lock.js';
import { readJsonFile, writeJsonAtomic } from '../../src/lib/atomic.js';
import { createProgress, formatBytes } from '../../src/lib/progress.js';
import { PassThrough } from 'node:stream';

const dir = mkdtempSync(join(tmpdir(), 'nook-lib-'));

test('exclusive locks exclude, shared locks share, release frees', async (t) => {
  const path = join(dir, 'a.lock');
  const a = await acquireLock(path);
  t.is(await tryLock(path), null);
  a.release();
  a.release();
  const s1 = await acquireLock(path, { mode: 'shared' });
  const s2 = await tryLock(path, { mode: 'shared' });
  t.truthy(s2);
  t.is(await tryLock(path), null);
  s1.release();
  s2!.release();
  t.truthy(await withLock(path, {}, () => 42));
});

test('a lock held by another process makes us wait, then we get it', async (t) => {
  const path = join(dir, 'b.lock');
  // flock(1) from util-linux holds the lock for 300 ms in another process
  const child = spawn('flock', ['-x', path, 'sleep', '0.5'], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  // wait until flock(1) really holds it (a loaded machine starts processes slowly)
  for (let i = 0; i < 200; i++) {
    const probe = await tryLock(path);
    if (!probe) break;
    probe.release();
    await new Promise((r) => setTimeout(r, 10));
  }
  let waited = false;
  const lock = await acquireLock(path, { onWait: () => (waited = true) });
  t.true(waited);
  lock.release();
  await exited;
});

test('lock timeout is a one-line error', async (t) => {
  const path = join(dir, 'c.lock');
  const held = await acquireLock(path);
  await t.throwsAsync(acquireLock(path, { timeoutMs: 50, description: 'the image store' }), { message: /timed out after 50 ms waiting for the lock on the image store/ });
  held.release();
});

test('atomic JSON writes leave no temporary files', (t) => {
  const path = join(dir, 'x.json');
  t.deepEqual(readJsonFile(path, { none: true }), { none: true });
  writeJsonAtomic(path, { a: 1 });
  writeJsonAtomic(path, { a: 2 });
  t.deepEqual(readJsonFile(path, {}), { a: 2 });
  t.deepEqual(readdirSync(dir).filter((f) => f.includes('x.json')), ['x.json']);
  t.true(readFileSync(path, 'utf8').endsWith('\n'));
});

test('progress: plain lines when not a terminal', (t) => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const progress = createProgress({ stream: out as unknown as NodeJS.WriteStream });
  progress.step('Writing manifest');
  const task = progress.task('Copying blob sha256:abc', 2048);
  task.update(1024);
  task.finish();
  task.finish();
  t.is(text, 'Writing manifest\nCopying blob sha256:abc (2.0KiB)\nCopying blob sha256:abc done\n');
  t.is(formatBytes(5), '5B');
  t.is(formatBytes(1536), '1.5KiB');
});
