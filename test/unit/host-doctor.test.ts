import test from 'ava';
import { renderReport } from '../../src/cli/commands/doctor.js';
import { renderInfo } from '../../src/cli/commands/info.js';
import type { Check } from '../../src/host/check.js';
import { installCommand, parseOsRelease } from '../../src/host/distribution.js';
import { allChecks, runDoctor } from '../../src/host/doctor.js';
import { gatherInfo, versionFrom } from '../../src/host/info.js';
import { fakeExecutor, fakePaths, fakeView, healthyMachine, NFS, uninstall, removeFakePaths } from './host-fake.js';

test.after.always(removeFakePaths);

test('doctor: a healthy machine is ok with every check ok, in parallel over shared facts', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  const report = await runDoctor(paths, { view: fakeView(machine), executorPath: fakeExecutor });
  t.true(report.ok);
  t.deepEqual(
    report.checks.filter((c) => c.status !== 'ok').map((c) => `${c.id}: ${c.detail}`),
    [],
  );
  t.is(report.checks.length, allChecks.length);
  t.deepEqual(report.checks.map((c) => c.id).slice(0, 3), ['user-namespaces', 'subuid', 'subgid']);
  // facts are gathered once: one userns probe, one overlay probe, one systemctl
  t.is(machine.runs.filter((r) => r.file.endsWith('unshare')).length, 3);
  t.is(machine.runs.filter((r) => r.file.endsWith('systemctl')).length, 1);
});

test('doctor: a warning keeps ok (a container can run), a failure makes it not ok', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', '');
  machine.files.set('/etc/subgid', '');
  const warned = await runDoctor(paths, { view: fakeView(machine), executorPath: fakeExecutor });
  t.true(warned.ok);
  t.is(warned.checks.find((c) => c.id === 'subuid')?.status, 'warn');

  machine.filesystems.set(paths.root, NFS);
  const failed = await runDoctor(paths, { view: fakeView(machine), executorPath: fakeExecutor });
  t.false(failed.ok);
});

test('doctor: a check that throws becomes a warning, the others still answer', async (t) => {
  const paths = fakePaths();
  const broken: Check = async () => {
    throw new Error('boom');
  };
  const report = await runDoctor(paths, { view: fakeView(healthyMachine(paths)), checks: [broken, allChecks[0]!], executorPath: fakeExecutor });
  t.true(report.ok);
  t.is(report.checks[0]!.status, 'warn');
  t.regex(report.checks[0]!.detail, /could not check: boom/);
  t.is(report.checks[1]!.status, 'ok');
});

test('doctor text: plain marks without a TTY, breaks and fix lines, multi-line fixes indented', (t) => {
  const text = renderReport(
    {
      ok: false,
      checks: [
        { id: 'a', title: 'alpha', status: 'ok', detail: 'fine' },
        { id: 'b', title: 'beta', status: 'warn', detail: 'meh', breaks: 'something', fix: 'line one\nline two' },
        { id: 'c', title: 'gamma', status: 'fail', detail: 'bad', breaks: 'everything', fix: 'do it' },
      ],
    },
    false,
  );
  t.is(
    text,
    [
      'ok   alpha: fine',
      'warn beta: meh',
      '     breaks: something',
      '     fix:    line one',
      '             line two',
      'FAIL gamma: bad',
      '     breaks: everything',
      '     fix:    do it',
      '',
      'No container can run here: 1 problem to fix (marked FAIL).',
      '',
    ].join('\n'),
  );
  t.false(text.includes('\u001b['));
  const tty = renderReport({ ok: true, checks: [{ id: 'a', title: 'alpha', status: 'ok', detail: 'fine' }] }, true);
  t.true(tty.includes('✓'));
  t.regex(tty, /A container can run here\.\n$/);
});

test('info: versions, maps, choices with reasons', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  const info = await gatherInfo(paths, { view: fakeView(machine) });
  t.is(info.host.distribution, 'Debian GNU/Linux 12 (bookworm)');
  t.is(info.host.kernel, '6.8.0-31-generic');
  t.deepEqual(info.rootless.uidMap, [
    { inside: 0, outside: 1000, count: 1 },
    { inside: 1, outside: 100000, count: 65536 },
  ]);
  t.is(info.storage.driver, 'overlay');
  t.is(info.network.mode, 'slirp4netns');
  t.is(info.cgroups.manager, 'systemd');
  t.deepEqual(info.paths, { root: paths.root, runRoot: paths.runRoot });
  t.is(info.tools.slirp4netns.version, '1.2.0');
  t.is(info.tools['fuse-overlayfs'].version, '1.10');
  t.is(info.tools.newuidmap.version, 'uidmap 1:4.13+dfsg1-1');
  const text = renderInfo(info);
  t.regex(text, /uid map: +0:1000:1, 1:100000:65536/);
  t.regex(text, /storage: +overlay \(userxattr\)/);
});

test('info: the runtime\'s mapping: single without subordinate ids or without the helper', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', '');
  machine.files.set('/etc/subgid', '');
  const noIds = await gatherInfo(paths, { view: fakeView(machine) });
  t.deepEqual(noIds.rootless.uidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.deepEqual(noIds.rootless.gidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.regex(noIds.rootless.mapping, /no subordinate ids for alice.*single id mapping/);

  const machine2 = healthyMachine(paths);
  uninstall(machine2, 'newgidmap');
  const noHelper = await gatherInfo(paths, { view: fakeView(machine2) });
  t.is(noHelper.rootless.uidMap.length, 2);
  t.deepEqual(noHelper.rootless.gidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.regex(noHelper.rootless.mapping, /newgidmap is not installed/);
});

test('helpers: versionFrom, rootlessMaps, os-release, install commands', (t) => {
  t.is(versionFrom('fusermount3 version: 3.14.0\nfuse-overlayfs: version 1.10\n', 'fuse-overlayfs'), '1.10');
  t.is(versionFrom('unshare from util-linux 2.38.1\n', 'unshare'), '2.38.1');
  t.is(versionFrom('usage: newuidmap <pid> <uid>\n', 'newuidmap'), null);
  const ubuntu = parseOsRelease('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04 LTS"\nVERSION_ID="24.04"\n');
  t.is(ubuntu.prettyName, 'Ubuntu 24.04 LTS');
  t.is(installCommand(ubuntu, 'newgidmap'), 'sudo apt-get install uidmap');
  t.is(installCommand(parseOsRelease('ID="rocky"\nID_LIKE="rhel centos fedora"\n'), 'getcap'), 'sudo dnf install libcap');
  t.is(installCommand(parseOsRelease(null), 'slirp4netns'), 'install the package that provides slirp4netns');
});
