/**
 * `nook doctor` and `nook info` for real, as the unprivileged test user who has
 * subordinate ids (nooktest): a container can run, the real range is found,
 * and info agrees with doctor on the choices.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, runNook } from '../helpers/nook.js';
import { tempStore } from '../helpers/store.js';
import { probeKernelOverlay } from '../../src/host/kernel-overlay.js';

interface Check {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  breaks?: string;
  fix?: string;
}

/** The user's line in a subid file, read here independently of nook's parser. */
function ownRange(file: string): { start: number; count: number } | null {
  const { username, uid } = userInfo();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if ((owner === username || owner === String(uid)) && start && count) return { start: Number(start), count: Number(count) };
  }
  return null;
}

test.before((t) => {
  if (process.getuid?.() === 0) t.fail('run as the unprivileged test user (test/harness/run.sh does): as root doctor proves nothing');
});

test('doctor --json: exit 0, no failure, and the real subordinate range', async (t) => {
  const store = await tempStore(t);
  const uids = ownRange('/etc/subuid');
  const gids = ownRange('/etc/subgid');
  if (!uids || !gids) return t.fail(`${userInfo().username} has no entry in /etc/subuid or /etc/subgid: this suite needs the harness's user with subordinate ids`);

  const result = await runNook(['doctor', '--json'], store);
  t.is(result.exitCode, 0, describe(result));
  const report = JSON.parse(result.stdout) as { ok: boolean; checks: Check[] };
  t.true(report.ok);
  t.deepEqual(report.checks.filter((c) => c.status === 'fail'), []);
  const byId = new Map(report.checks.map((c) => [c.id, c]));

  const subuid = byId.get('subuid')!;
  t.is(subuid.status, 'ok', subuid.detail);
  t.true(subuid.detail.includes(`${uids.start}-${uids.start + uids.count - 1} (${uids.count} ids) from /etc/subuid`), subuid.detail);
  const subgid = byId.get('subgid')!;
  t.true(subgid.detail.includes(`${gids.start}-${gids.start + gids.count - 1}`), subgid.detail);

  for (const id of ['user-namespaces', 'newuidmap', 'newgidmap', 'storage-filesystem']) t.is(byId.get(id)?.status, 'ok', `${id}: ${byId.get(id)?.detail}`);
  // every problem comes with what breaks and the fix
  for (const check of report.checks.filter((c) => c.status !== 'ok')) {
    t.truthy(check.breaks, check.id);
    t.truthy(check.fix, check.id);
  }
  // the storage root examined is the one given with --root
  t.true(byId.get('storage-filesystem')!.detail.startsWith(store.root), byId.get('storage-filesystem')!.detail);
});

test('doctor exits 1 when a container cannot run: a storage root the user cannot create', async (t) => {
  const store = await tempStore(t);
  // "/" is root's: the storage root under it cannot be created by the test user
  const result = await runNook(['doctor', '--json'], { ...store, root: '/nook-doctor-not-yours' });
  t.is(result.exitCode, 1, describe(result));
  const report = JSON.parse(result.stdout) as { ok: boolean; checks: Check[] };
  t.false(report.ok);
  const storage = report.checks.find((c) => c.id === 'storage-filesystem')!;
  t.is(storage.status, 'fail');
  t.regex(storage.detail, /not writable/);
  t.regex(storage.fix!, /sudo install -d -o \S+ -m 0700 \/nook-doctor-not-yours/);
  const text = await runNook(['doctor'], { ...store, root: '/nook-doctor-not-yours' });
  t.is(text.exitCode, 1);
  t.regex(text.stdout, /^FAIL storage directory: /m);
  t.regex(text.stdout, /No container can run here: 1 problem to fix/);
});

test('doctor text output: plain marks when not a TTY, one summary line', async (t) => {
  const store = await tempStore(t);
  const result = await runNook(['doctor'], store);
  t.is(result.exitCode, 0, describe(result));
  t.false(result.stdout.includes('\u001b['));
  t.regex(result.stdout, /^ok {3}user namespaces: /m);
  t.regex(result.stdout, /^ok {3}subordinate uids: /m);
  t.regex(result.stdout, /A container can run here/);
  for (const line of result.stdout.split('\n').filter((l) => /^(warn|FAIL) /.test(l))) t.regex(result.stdout, new RegExp(`${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n {5}breaks: .+\\n {5}fix: `));
});

test('info --format json: the same choices as doctor, the real id maps, versions of the tools', async (t) => {
  const store = await tempStore(t);
  const [info, doctor] = await Promise.all([runNook(['info', '--format', 'json'], store), runNook(['doctor', '--json'], store)]);
  t.is(info.exitCode, 0, describe(info));
  const data = JSON.parse(info.stdout) as {
    nook: { version: string };
    rootless: { uid: number; uidMap: { inside: number; outside: number; count: number }[] };
    paths: { root: string; runRoot: string };
    storage: { driver: string; reason: string };
    network: { mode: string; reason: string };
    cgroups: { manager: string; reason: string };
    tools: Record<string, { path: string | null; version: string | null }>;
  };
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(data.nook.version, pkg.version);
  t.deepEqual(data.paths, { root: store.root, runRoot: store.runroot });
  const uids = ownRange('/etc/subuid')!;
  t.deepEqual(data.rootless.uidMap, [
    { inside: 0, outside: data.rootless.uid, count: 1 },
    { inside: 1, outside: uids.start, count: uids.count },
  ]);
  for (const tool of ['newuidmap', 'slirp4netns', 'fuse-overlayfs', 'unshare']) {
    t.truthy(data.tools[tool]?.path, `${tool} must be installed for the suite`);
    t.truthy(data.tools[tool]?.version, `${tool} version`);
  }
  for (const part of [data.storage, data.network, data.cgroups]) t.true(part.reason.length > 0);
  const checks = (JSON.parse(doctor.stdout) as { checks: Check[] }).checks;
  t.true(checks.find((c) => c.id === 'storage-driver')!.detail.startsWith(`${data.storage.driver}:`));
  // on this machine slirp4netns and /dev/net/tun are set up by the harness
  t.is(data.network.mode, 'slirp4netns', data.network.reason);
  // the overlay answer is cached in the run root for the next run
  t.true(existsSync(join(store.runroot, 'kernel-overlay.json')));
});

test('the kernel overlay probe runs for real, cleans up, and is cached', async (t) => {
  const store = await tempStore(t);
  const paths = { root: store.root, runRoot: store.runroot };
  const first = await probeKernelOverlay(paths);
  t.false(first.cached);
  t.true(first.reason.length > 0);
  t.deepEqual(readdirSync(store.root), [], 'the probe directory is removed, even overlay\'s work/work');
  const second = await probeKernelOverlay(paths);
  t.true(second.cached);
  t.is(second.supported, first.supported);
  t.log(`kernel overlay: ${first.supported} (${first.reason})`);
});
