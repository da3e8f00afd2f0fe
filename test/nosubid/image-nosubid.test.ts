/**
 * Images for a user WITHOUT subordinate ids (the harness runs test/nosubid as
 * nooktest2): only the user's own id exists in the user namespace, so a layer
 * with files of other owners is refused with the file, the id, the one id
 * available and the fix; --ignore-chown-errors loads it anyway; images whose
 * files all belong to root load normally.
 */
import test from 'ava';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { busyboxDockerArchive, rootfsFacts } from '../helpers/fixtures.js';
import { describe, runNook } from '../helpers/nook.js';
import { tempStore } from '../helpers/store.js';
import { makeTar } from '../unit/image-tarmaker.js';

function hasEntry(file: string): boolean {
  const { username, uid } = userInfo();
  return readFileSync(file, 'utf8')
    .split('\n')
    .some((line) => line.startsWith(`${username}:`) || line.startsWith(`${uid}:`));
}

test.before((t) => {
  if (process.getuid?.() === 0) t.fail('run as the test user without subordinate ids (test/harness/run.sh runs test/nosubid as nooktest2)');
  if (hasEntry('/etc/subuid') || hasEntry('/etc/subgid')) t.fail(`${userInfo().username} has subordinate ids: test/nosubid must run as a user without any`);
});

test('files of other owners are refused with the fix; --ignore-chown-errors gives them to the user', async (t) => {
  const s = await tempStore(t);
  const target = { root: s.root, runroot: s.runroot, env: s.env };
  const refused = await runNook(['load', '-q', '-i', busyboxDockerArchive()], target);
  t.is(refused.exitCode, 125, describe(refused));
  t.regex(refused.stderr, /is owned by [ug]id \d+, outside the [ug]ids available in nook's user namespace \(0\); add subordinate ids for \S+ to \/etc\/subuid and \/etc\/subgid .* --ignore-chown-errors/);
  t.is(refused.stderr.split('\n').length, 1);
  t.is((await runNook(['images', '-q'], target)).stdout, '');

  const loaded = await runNook(['load', '-q', '--ignore-chown-errors', '-i', busyboxDockerArchive()], target);
  t.is(loaded.exitCode, 0, describe(loaded));
  const inspect = JSON.parse((await runNook(['image', 'inspect', 'busybox'], target)).stdout) as { RootFS: { Layers: string[] } }[];
  const dir = join(s.root, 'storage', 'layers', inspect[0]!.RootFS.Layers[0]!.slice(7), 'diff');
  t.is(lstatSync(join(dir, rootfsFacts.ownedFile.path)).uid, process.getuid!());
});

test('a root-owned rootfs imports normally', async (t) => {
  const s = await tempStore(t);
  const target = { root: s.root, runroot: s.runroot, env: s.env };
  const file = join(s.dir, 'root-only.tar');
  writeFileSync(file, makeTar([{ path: 'etc/', type: 'dir' }, { path: 'etc/hostname', data: 'x\n' }, { path: '.wh.gone', data: '' }]));
  const r = await runNook(['import', '-q', file, 'rootonly'], target);
  t.is(r.exitCode, 0, describe(r));
  t.is((await runNook(['images', '--format', '{{.Repository}}'], target)).stdout, 'localhost/rootonly');
  const rmi = await runNook(['rmi', 'rootonly'], target);
  t.is(rmi.exitCode, 0, describe(rmi));
});
