import test from 'ava';
import { busSocketPath, chooseCgroupManager, parseOwnCgroup } from '../../src/host/cgroup-manager.js';
import { checkCgroupControllers, checkCgroupVersion, checkLingering, checkRuntimeDir, checkSystemdUserSession } from '../../src/host/checks-cgroups.js';
import { checkDevNetTun, checkSlirp4netns } from '../../src/host/checks-network.js';
import { chooseNetworkMode } from '../../src/host/network-mode.js';
import { done, fakePaths, fakeView, healthyMachine, runCheck, TMPFS, CGROUP2, uninstall, type FakeMachine, removeFakePaths } from './host-fake.js';

test.after.always(removeFakePaths);

const paths = fakePaths();
const userService = '/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service';
const own = `${userService}/app.slice/nook.scope`;

function cgroupV1Hybrid(machine: FakeMachine): void {
  machine.filesystems.set('/sys/fs/cgroup', TMPFS);
  machine.filesystems.set('/sys/fs/cgroup/unified', CGROUP2);
  machine.files.set('/proc/self/cgroup', '4:memory:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice\n');
}

function noSystemd(machine: FakeMachine): void {
  machine.stats.delete('/run/systemd/system');
  uninstall(machine, 'systemctl');
}

// ---- the cgroup manager choice

test('cgroup manager: v2 with a systemd user session is systemd with the delegated controllers', async (t) => {
  const choice = await chooseCgroupManager({ view: fakeView(healthyMachine(paths)) });
  t.is(choice.manager, 'systemd');
  t.deepEqual(choice.controllers, ['cpuset', 'cpu', 'io', 'memory', 'pids']);
  t.regex(choice.reason, /systemd user session answers at \/run\/user\/1000\/bus/);
});

test('cgroup manager: v1 (hybrid) is none, as on the CI machine', async (t) => {
  const machine = healthyMachine(paths);
  cgroupV1Hybrid(machine);
  const choice = await chooseCgroupManager({ view: fakeView(machine) });
  t.is(choice.manager, 'none');
  t.is(choice.version, 'v1-hybrid');
  t.is(choice.reason, 'cgroup v1 (hybrid): resource limits unavailable; containers run without limits');
});

test('cgroup manager: pure v1 is none', async (t) => {
  const machine = healthyMachine(paths);
  machine.filesystems.set('/sys/fs/cgroup', TMPFS);
  const choice = await chooseCgroupManager({ view: fakeView(machine) });
  t.is(choice.version, 'v1');
  t.is(choice.manager, 'none');
});

test('cgroup manager: v2 without systemd but a writable own cgroup is cgroupfs', async (t) => {
  const machine = healthyMachine(paths);
  noSystemd(machine);
  const choice = await chooseCgroupManager({ view: fakeView(machine) });
  t.is(choice.manager, 'cgroupfs');
  t.is(choice.parentCgroup, own);
  t.deepEqual(choice.controllers, ['cpuset', 'cpu', 'io', 'memory', 'pids']);
  t.regex(choice.reason, /systemd is not PID 1/);
});

test('cgroup manager: v2, systemd, but systemctl --user fails and the cgroup is not ours: none', async (t) => {
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/systemctl', () => done('', 1, 'Failed to connect to bus: No medium found\n'));
  machine.writable.clear();
  const choice = await chooseCgroupManager({ view: fakeView(machine) });
  t.is(choice.manager, 'none');
  t.regex(choice.reason, /no systemd user session \(Failed to connect to bus: No medium found\) and no writable delegated cgroup/);
});

test('cgroup manager: a cgroup namespace root ("0::/") that is writable is cgroupfs', async (t) => {
  const machine = healthyMachine(paths);
  noSystemd(machine);
  machine.files.set('/proc/self/cgroup', '0::/\n');
  machine.files.set('/sys/fs/cgroup/cgroup.controllers', 'memory pids\n');
  machine.files.set('/sys/fs/cgroup/cgroup.subtree_control', 'memory pids\n');
  for (const p of ['/sys/fs/cgroup', '/sys/fs/cgroup/cgroup.procs', '/sys/fs/cgroup/cgroup.subtree_control']) machine.writable.add(p);
  const choice = await chooseCgroupManager({ view: fakeView(machine) });
  t.is(choice.manager, 'cgroupfs');
  t.is(choice.parentCgroup, '/sys/fs/cgroup');
  t.deepEqual(choice.controllers, ['memory', 'pids']);
});

test('cgroup parsers: own cgroup and bus address', (t) => {
  t.is(parseOwnCgroup('1:name=systemd:/x\n0::/user.slice/a.scope\n'), '/user.slice/a.scope');
  t.is(parseOwnCgroup('4:memory:/\n'), null);
  t.is(busSocketPath('unix:path=/run/user/1000/bus,guid=abc'), '/run/user/1000/bus');
  t.is(busSocketPath('unix:abstract=/tmp/dbus-x;unix:path=/run/b'), '/run/b');
  t.is(busSocketPath('tcp:host=localhost'), null);
  t.is(busSocketPath(undefined), null);
});

// ---- the checks

test('checks: a healthy systemd machine is ok everywhere', async (t) => {
  const machine = healthyMachine(paths);
  for (const check of [checkCgroupVersion, checkCgroupControllers, checkSystemdUserSession, checkLingering, checkRuntimeDir]) {
    const result = await runCheck(check, machine, paths);
    t.is(result?.status, 'ok', result?.id);
  }
});

test('checks: cgroup v1 warns with the kernel command line fix, and skips the v2-only checks', async (t) => {
  const machine = healthyMachine(paths);
  cgroupV1Hybrid(machine);
  const version = await runCheck(checkCgroupVersion, machine, paths);
  t.is(version?.status, 'warn');
  t.is(version!.detail, 'cgroup v1 (hybrid): resource limits unavailable; containers run without limits');
  t.regex(version!.fix!, /systemd\.unified_cgroup_hierarchy=1/);
  t.is(await runCheck(checkCgroupControllers, machine, paths), null);
});

test('checks: v2 delegating only cpu memory pids (Debian 12 default) warns with the Delegate= drop-in', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set(`${userService}/cgroup.controllers`, 'cpu memory pids\n');
  const result = await runCheck(checkCgroupControllers, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /missing: cpuset io/);
  t.regex(result!.breaks!, /--cpuset-cpus/);
  t.true(result!.fix!.includes('/etc/systemd/system/user@.service.d/delegate.conf'));
  t.true(result!.fix!.includes('Delegate=cpu cpuset io memory pids'));
  t.true(result!.fix!.includes('sudo systemctl daemon-reload'));
});

test('checks: v2 without any delegation warns that limits are lost', async (t) => {
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/systemctl', () => done('', 1, 'Failed to connect to bus\n'));
  machine.writable.clear();
  const result = await runCheck(checkCgroupControllers, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.breaks!, /resource limits/);
  t.regex(result!.fix!, /Delegate=cpu cpuset io memory pids/);
});

test('checks: no systemd user session (after su) warns with machinectl and linger', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.delete('/run/user/1000/bus');
  delete machine.env.DBUS_SESSION_BUS_ADDRESS;
  const result = await runCheck(checkSystemdUserSession, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /\/run\/user\/1000\/bus missing/);
  t.regex(result!.fix!, /machinectl shell alice@/);
  t.regex(result!.fix!, /loginctl enable-linger alice/);
});

test('checks: lingering disabled warns that detached containers die at logout', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.delete('/var/lib/systemd/linger/alice');
  const result = await runCheck(checkLingering, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.breaks!, /-d/);
  t.regex(result!.fix!, /^loginctl enable-linger alice/);
});

test('checks: session checks do not apply without systemd', async (t) => {
  const machine = healthyMachine(paths);
  noSystemd(machine);
  t.is(await runCheck(checkSystemdUserSession, machine, paths), null);
  t.is(await runCheck(checkLingering, machine, paths), null);
});

test('checks: XDG_RUNTIME_DIR unset, someone else\'s, or missing warns with the run root used instead', async (t) => {
  const machine = healthyMachine(paths);
  delete machine.env.XDG_RUNTIME_DIR;
  const unset = await runCheck(checkRuntimeDir, machine, paths);
  t.is(unset?.status, 'warn');
  t.regex(unset!.breaks!, new RegExp(`run state in ${paths.runRoot}`));

  machine.env.XDG_RUNTIME_DIR = '/run/user/0';
  machine.stats.set('/run/user/0', { type: 'dir', mode: 0o700, uid: 0, gid: 0 });
  const foreign = await runCheck(checkRuntimeDir, machine, paths);
  t.is(foreign?.status, 'warn');
  t.regex(foreign!.detail, /belongs to uid 0, not alice \(after su or sudo\)/);
  t.regex(foreign!.fix!, /export XDG_RUNTIME_DIR=\/run\/user\/1000/);

  machine.env.XDG_RUNTIME_DIR = '/run/user/4242';
  t.regex((await runCheck(checkRuntimeDir, machine, paths))!.detail, /does not exist/);
});

test('checks: a group-readable XDG_RUNTIME_DIR warns', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.set('/run/user/1000', { type: 'dir', mode: 0o755, uid: 1000, gid: 1000 });
  const result = await runCheck(checkRuntimeDir, machine, paths);
  t.is(result?.status, 'warn');
  t.is(result!.fix, 'chmod 0700 /run/user/1000');
});

// ---- network

test('network: slirp4netns and a usable tun give slirp4netns', async (t) => {
  const machine = healthyMachine(paths);
  const choice = await chooseNetworkMode({ view: fakeView(machine) });
  t.is(choice.mode, 'slirp4netns');
  t.is(choice.slirp4netnsPath, '/usr/bin/slirp4netns');
  t.is((await runCheck(checkSlirp4netns, machine, paths))?.status, 'ok');
  t.is((await runCheck(checkDevNetTun, machine, paths))?.status, 'ok');
});

test('network: no slirp4netns gives none, and the check warns with the install command', async (t) => {
  const machine = healthyMachine(paths);
  uninstall(machine, 'slirp4netns');
  const choice = await chooseNetworkMode({ view: fakeView(machine) });
  t.is(choice.mode, 'none');
  t.regex(choice.reason, /slirp4netns is not installed/);
  const result = await runCheck(checkSlirp4netns, machine, paths);
  t.is(result?.status, 'warn');
  t.is(result!.fix, 'sudo apt-get install slirp4netns');
  t.regex(result!.breaks!, /--network none/);
});

test('network: an unusable /dev/net/tun gives none with the reason and the fix', async (t) => {
  const machine = healthyMachine(paths);
  machine.devices.set('/dev/net/tun', { usable: false, code: 'EACCES' });
  const choice = await chooseNetworkMode({ view: fakeView(machine) });
  t.is(choice.mode, 'none');
  t.regex(choice.reason, /\/dev\/net\/tun cannot be opened \(EACCES\)/);
  const result = await runCheck(checkDevNetTun, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.fix!, /^sudo chmod 0666 \/dev\/net\/tun/);

  machine.devices.delete('/dev/net/tun');
  t.regex((await runCheck(checkDevNetTun, machine, paths))!.fix!, /sudo modprobe tun/);
});
