/**
 * The three storage drivers show the same root from a two-layer image:
 * a whiteout hides a file, an opaque directory hides the lower content, the
 * upper layer wins, ownership is the image's, and writes stay per container.
 */
import test from 'ava';
import { layeredFacts as facts, layeredOciLayout } from '../helpers/fixtures.js';
import { describe, runNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';

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
