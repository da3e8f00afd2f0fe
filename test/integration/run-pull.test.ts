/**
 * `nook run` of an image that is not in the store pulls it first (podman's
 * --pull=missing), from the harness's TLS + auth registry.
 */
import test from 'ava';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { testRegistry } from '../helpers/fixtures.js';
import { describe, runNook } from '../helpers/nook.js';
import { tempStore } from '../helpers/store.js';

test('run pulls a missing image, then runs it; --pull=never refuses', async (t) => {
  const store = await tempStore(t);
  const registry = testRegistry();
  const nook = (args: string[], input?: string) => runNook(args, { root: store.root, runroot: store.runroot, env: store.env, ...(input !== undefined ? { input } : {}) });
  // As a user would set it up: the registry's CA in certs.d, credentials through login.
  const certsD = join(store.home, '.config/containers/certs.d', registry.host);
  mkdirSync(certsD, { recursive: true });
  copyFileSync(registry.caFile, join(certsD, 'ca.crt'));
  const login = await nook(['login', '-u', registry.user, '--password-stdin', registry.host], `${registry.password}\n`);
  t.is(login.exitCode, 0, describe(login));

  const never = await nook(['run', '--rm', '--pull', 'never', registry.images.busybox, 'true']);
  t.is(never.exitCode, 125);
  t.regex(never.stderr, /image not known/);

  const run = await nook(['run', '--rm', registry.images.busybox, 'echo', 'pulled and ran']);
  t.is(run.exitCode, 0, describe(run));
  t.is(run.stdout, 'pulled and ran');
  const images = await nook(['images', '--format', 'json']);
  t.true(images.stdout.includes(registry.images.busybox.split(':')[0]!.split('/').pop()!));

  const local = await nook(['run', '--rm', 'localhost/not-there', 'true']);
  t.is(local.exitCode, 125);
  t.regex(local.stderr, /never pulled/);
});
