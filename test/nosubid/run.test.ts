/**
 * Run as a user without /etc/subuid and /etc/subgid entries (the harness's
 * nooktest2): containers still run, with a single mapping and a warning that
 * says what is lost.
 */
import test from 'ava';
import { busyboxRootfsTar } from '../helpers/fixtures.js';
import { describe, runNook } from '../helpers/nook.js';
import { tempStore } from '../helpers/store.js';

test('a user without subordinate ids runs containers with a single id mapping', async (t) => {
  const store = await tempStore(t);
  const nook = (args: string[]) => runNook(args, { root: store.root, runroot: store.runroot, env: store.env });
  // The fixture has a file owned by 1000, which cannot be mapped: import squashes it as podman's --ignore-chown-errors.
  const imported = await nook(['import', '--ignore-chown-errors', busyboxRootfsTar(), 'localhost/busybox']);
  t.is(imported.exitCode, 0, describe(imported));
  const r = await nook(['run', '--rm', 'localhost/busybox', 'sh', '-c', 'cat /proc/self/uid_map; id -u']);
  t.is(r.exitCode, 0, describe(r));
  const [map, uid] = r.stdout.split('\n');
  t.deepEqual(map!.trim().split(/\s+/).map(Number), [0, process.getuid!(), 1]);
  t.is(uid, '0');
  t.regex(r.stderr, /no subordinate ids .* single id mapping; files owned by other ids and chown to them will fail/);
  const chown = await nook(['run', '--rm', 'localhost/busybox', 'chown', '1000', '/tmp']);
  t.not(chown.exitCode, 0);
});
