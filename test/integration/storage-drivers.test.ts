/**
 * The three storage drivers show the same root from a two-layer image:
 * a whiteout hides a file, an opaque directory hides the lower content, the
 * upper layer wins, ownership is the image's, and writes stay per container.
 */
import test from 'ava';
import { layeredFacts as facts, layeredOciLayout } from '../helpers/fixtures.js';
import { describe, runNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { linuxSyscalls } from '../../src/syscalls/syscalls.js';
import { makeTar, type RawEntry } from '../unit/image-tarmaker.js';

let store: TempStore;
const image = 'localhost/layered:test';
const nook = (args: string[]): Promise<NookResult> => runNook(args, { root: store.root, runroot: store.runroot, env: store.env });

test.before(async () => {
  store = await tempStore();
  const loaded = await nook(['load', '-i', layeredOciLayout()]);
  if (loaded.exitCode !== 0) throw new Error(describe(loaded));
  const id = loaded.stdout.trim().split('\n').pop()!.replace(/^.*sha256:/, '').trim();
  const tagged = await nook(['tag', id, image]);
  if (tagged.exitCode !== 0) throw new Error(describe(tagged));
});

test.after.always(async () => {
  await store?.cleanup();
});

for (const driver of ['overlay', 'fuse-overlayfs', 'vfs']) {
  test(`${driver}: whiteouts, opaque directories and upper layers as the image says`, async (t) => {
    const script = [
      `test -e ${facts.removed} && echo removed-visible`,
      `cat ${facts.added.path} ${facts.changed.path}`,
      `ls ${facts.opaqueDir}`,
      'echo written > /tmp/mine && cat /tmp/mine',
    ].join('; ');
    const r = await nook(['run', '--rm', '--storage-driver', driver, image, 'sh', '-c', script]);
    t.is(r.exitCode, 0, describe(r));
    t.is(r.stdout, `${facts.added.content}${facts.changed.content}${facts.opaqueKept.path.split('/').pop()}\nwritten`);
    // A second container does not see the first one's writes.
    const other = await nook(['run', '--rm', '--storage-driver', driver, image, 'sh', '-c', 'test -e /tmp/mine && echo leaked || echo clean']);
    t.is(other.stdout, 'clean');
  });
}

/** A one-layer image's tar: the host's static busybox as /bin/sh, then `entries`. */
function writeBusyboxTar(name: string, entries: RawEntry[]): string {
  const busybox = readFileSync(execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim());
  const path = join(store.dir, name);
  writeFileSync(
    path,
    makeTar([
      { path: 'bin/', type: 'dir', mode: 0o755 },
      { path: 'bin/busybox', data: busybox, mode: 0o755 },
      { path: 'bin/sh', type: 'symlink', linkpath: 'busybox' },
      ...entries,
    ]),
  );
  return path;
}

test('vfs: a bottom layer copied by cp -a keeps hard links and loses the whiteouts and opaque markers that hide nothing', async (t) => {
  const tarPath = writeBusyboxTar('bottom.tar', [
    { path: 'etc/', type: 'dir', mode: 0o755 },
    { path: 'etc/.wh.gone', data: '' },
    { path: 'opq/', type: 'dir', mode: 0o755 },
    { path: 'opq/.wh..wh..opq', data: '' },
    { path: 'opq/kept', data: 'kept\n' },
    { path: 'a', data: 'hard\n' },
    { path: 'b', type: 'hardlink', linkpath: 'a' },
  ]);
  const imported = await nook(['import', tarPath, 'localhost/vfs-bottom:test']);
  t.is(imported.exitCode, 0, describe(imported));
  const r = await nook(['run', '--name', 'vfs-bottom', '--storage-driver', 'vfs', 'localhost/vfs-bottom:test', 'sh', '-c', 'busybox find / -xdev -type c; busybox stat -c %h /b; busybox cat /opq/kept; busybox ls -A /etc']);
  t.is(r.exitCode, 0, describe(r));
  // /etc holds only the files nook mounts over: no whiteout, by either name
  t.is(r.stdout, '2\nkept\nhostname\nhosts\nresolv.conf');
  const inspect = JSON.parse((await nook(['inspect', 'vfs-bottom'])).stdout) as { Id: string }[];
  const sys = await linuxSyscalls();
  t.is(sys.lgetxattr(join(store.root, 'containers', inspect[0]!.Id, 'upper', 'opq'), 'user.overlay.opaque'), null);
  t.is((await nook(['rm', 'vfs-bottom'])).exitCode, 0);
});

test('vfs: a single layer without whiteouts is copied as it is, hard links and owners kept', async (t) => {
  const tarPath = writeBusyboxTar('plain.tar', [
    { path: 'a', data: 'hard\n', uid: 1000, gid: 1000 },
    { path: 'b', type: 'hardlink', linkpath: 'a' },
  ]);
  t.is((await nook(['import', tarPath, 'localhost/vfs-plain:test'])).exitCode, 0);
  const r = await nook(['run', '--rm', '--storage-driver', 'vfs', 'localhost/vfs-plain:test', 'sh', '-c', 'busybox stat -c "%h %u:%g" /b; busybox cat /b']);
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout, '2 1000:1000\nhard');
});
