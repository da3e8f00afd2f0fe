import test from 'ava';
import { checkNewgidmap, checkNewuidmap, checkSubgids, checkSubuids, checkUnshare, checkUserNamespaces, suggestFreeRange } from '../../src/host/checks-userns.js';
import { parseGetcap } from '../../src/host/idmap-helpers.js';
import { subidServices } from '../../src/host/subids.js';
import { done, fakeExecutor, fakePaths, healthyMachine, runCheck, uninstall, removeFakePaths } from './host-fake.js';

test.after.always(removeFakePaths);

const paths = fakePaths();

// ---- user namespaces

test('user namespaces: a healthy machine is ok and says unshare works', async (t) => {
  const result = await runCheck(checkUserNamespaces, healthyMachine(paths), paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /max_user_namespaces=63432; unshare --user works/);
});

test('user namespaces: max_user_namespaces=0 fails with the sysctl and a sysctl.d file', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/proc/sys/user/max_user_namespaces', '0\n');
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.fix!, /^sudo sysctl -w user\.max_user_namespaces=15000$/m);
  t.regex(result!.fix!, /\/etc\/sysctl\.d\//);
  t.truthy(result!.breaks);
});

test('user namespaces: Debian unprivileged_userns_clone=0 fails with its sysctl', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/proc/sys/kernel/unprivileged_userns_clone', '0\n');
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.fix!, /sudo sysctl -w kernel\.unprivileged_userns_clone=1/);
});

test('user namespaces: Ubuntu 24.04 AppArmor restriction fails with a profile naming the executor', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/os-release', 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n');
  machine.files.set('/proc/sys/kernel/apparmor_restrict_unprivileged_userns', '1\n');
  machine.files.set('/sys/module/apparmor/parameters/enabled', 'Y\n');
  machine.commands.set('/usr/bin/unshare', () => done('', 1, 'unshare: write failed /proc/self/uid_map: Operation not permitted\n'));
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.detail, /apparmor_restrict_unprivileged_userns is 1/);
  t.true(result!.fix!.includes(`profile nook-exec ${fakeExecutor} flags=(unconfined) {`));
  t.regex(result!.fix!, /^ {2}userns,$/m);
  t.regex(result!.fix!, /sudo apparmor_parser -r \/etc\/apparmor\.d\/nook/);
  // the image store's unshare needs the same permission
  t.true(result!.fix!.includes('profile nook-unshare /usr/bin/unshare flags=(unconfined) {'));
});

test('user namespaces: the AppArmor restriction is ok once nook\'s profile is installed', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/proc/sys/kernel/apparmor_restrict_unprivileged_userns', '1\n');
  machine.files.set('/sys/module/apparmor/parameters/enabled', 'Y\n');
  machine.files.set('/etc/apparmor.d/nook', `abi <abi/4.0>,\nprofile nook-exec ${fakeExecutor} flags=(unconfined) {\n  userns,\n}\n`);
  // the executor alone is not enough: unshare is missing from the profile
  t.is((await runCheck(checkUserNamespaces, machine, paths))?.status, 'fail');
  machine.files.set('/etc/apparmor.d/nook', `${machine.files.get('/etc/apparmor.d/nook')}profile nook-unshare /usr/bin/unshare flags=(unconfined) {\n  userns,\n}\n`);
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'ok');
});

test('user namespaces: the restriction knob without AppArmor enabled does not matter', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/proc/sys/kernel/apparmor_restrict_unprivileged_userns', '1\n');
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'ok');
});

test('user namespaces: sysctls fine but unshare refused (seccomp in a container) fails with the reason', async (t) => {
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/unshare', () => done('', 1, 'unshare: unshare failed: Operation not permitted\n'));
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.detail, /unshare failed: Operation not permitted/);
  t.regex(result!.fix!, /seccomp=unconfined/);
});

test('user namespaces: without unshare the sysctls alone decide', async (t) => {
  const machine = healthyMachine(paths);
  uninstall(machine, 'unshare');
  const result = await runCheck(checkUserNamespaces, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /not tried/);
});

// ---- util-linux unshare (the image store's user namespaces)

test('unshare: 2.38+ is ok', async (t) => {
  const result = await runCheck(checkUnshare, healthyMachine(paths), paths);
  t.is(result?.status, 'ok');
  t.is(result!.detail, '/usr/bin/unshare (util-linux 2.39)');
});

test('unshare: missing fails (images cannot be unpacked) with the install command', async (t) => {
  const machine = healthyMachine(paths);
  uninstall(machine, 'unshare');
  const result = await runCheck(checkUnshare, machine, paths);
  t.is(result?.status, 'fail');
  t.is(result!.fix, 'sudo apt-get install util-linux');
});

test('unshare: 2.37 (Ubuntu 22.04) fails for a user with subordinate ids, is ok without', async (t) => {
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/unshare', () => done('unshare from util-linux 2.37.2\n'));
  const result = await runCheck(checkUnshare, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.detail, /lacks --map-users/);
  machine.files.set('/etc/subuid', '');
  t.is((await runCheck(checkUnshare, machine, paths))?.status, 'ok');
});

// ---- subordinate ids

test('subuid: a full range is ok and is described', async (t) => {
  const result = await runCheck(checkSubuids, healthyMachine(paths), paths);
  t.is(result?.status, 'ok');
  t.is(result!.detail, 'alice: 100000-165535 (65536 ids) from /etc/subuid');
});

test('subuid: root needs no range', async (t) => {
  const machine = healthyMachine(paths);
  machine.uid = 0;
  machine.userName = 'root';
  machine.files.set('/etc/subuid', '');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /not needed/);
});

test('subuid: an entry by numeric uid counts as the user\'s', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', '1000:300000:65536\n');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /300000-365535/);
});

test('subuid: no entry warns (single mapping still runs) with a usermod for a free range', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', 'bob:100000:65536\n');
  machine.files.set('/etc/subgid', 'bob:100000:65536\ncarol:165536:65536\n');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /no subordinate uids for alice in \/etc\/subuid/);
  t.regex(result!.breaks!, /single mapping/);
  // free in both files: after bob's and carol's ranges
  t.is(result!.fix, 'sudo usermod --add-subuids 231072-296607 --add-subgids 231072-296607 alice');
});

test('subuid: a range of 1000 ids warns about images needing ids up to 65535', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', 'alice:100000:1000\n');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /only 1000 subordinate uids/);
  t.regex(result!.breaks!, /1000 and above/);
  t.regex(result!.fix!, /sudo usermod --del-subuids 100000-100999 alice/);
  t.regex(result!.fix!, /sudo usermod --add-subuids \d+-\d+ alice/);
});

test('subgid: a range overlapping another user\'s warns about isolation', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subgid', 'alice:100000:65536\nbob:150000:65536\n');
  const result = await runCheck(checkSubgids, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /100000-165535 overlaps bob's 150000-215535 in \/etc\/subgid/);
  t.regex(result!.breaks!, /alice and bob share host gids/);
  t.regex(result!.fix!, /sudo usermod --del-subgids 100000-165535 alice\nsudo usermod --add-subgids 231072-296607 alice/);
});

test('subuid: an unreadable /etc/subuid fails (the runtime stops there) and says how to fix the mode', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.delete('/etc/subuid');
  machine.stats.set('/etc/subuid', { type: 'file', mode: 0o600, uid: 0, gid: 0 });
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'fail');
  t.is(result!.fix, 'sudo chmod 644 /etc/subuid');
});

test('subuid: nsswitch serving subid from SSSD asks getsubids', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/nsswitch.conf', 'passwd: files sss\nsubid: sss\n');
  machine.files.delete('/etc/subuid');
  machine.commands.set('/usr/bin/getsubids', () => done('0: alice 2147483648 65536\n'));
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /2147483648-2147549183 \(65536 ids\) from getsubids alice/);
  t.true(machine.runs.some((r) => r.file === '/usr/bin/getsubids' && r.args.join(' ') === 'alice'));
});

test('subgid: getsubids -g with no range on an LDAP site says to ask the administrator', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/nsswitch.conf', 'subid: sss\n');
  machine.files.set('/etc/subgid', '');
  machine.commands.set('/usr/bin/getsubids', () => done('', 1, 'Error fetching ranges\n'));
  const result = await runCheck(checkSubgids, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /getsubids -g alice/);
  t.regex(result!.fix!, /ipa subid-generate --owner alice/);
  t.true(machine.runs.some((r) => r.file === '/usr/bin/getsubids' && r.args.join(' ') === '-g alice'));
});

test('subuid: nsswitch without getsubids installed warns with the install command', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/nsswitch.conf', 'subid: sss\n');
  machine.files.delete('/etc/subuid');
  uninstall(machine, 'getsubids');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'warn');
  t.is(result!.fix, 'sudo apt-get install uidmap');
});

test('nsswitch subid services', (t) => {
  t.deepEqual(subidServices('passwd: files\n# subid: sss\nsubid:   sss [NOTFOUND=return] files\n'), ['sss', 'files']);
  t.deepEqual(subidServices('passwd: files\n'), []);
  t.deepEqual(subidServices(null), []);
});

test('subuid: as the runtime, getsubids answers when the files say nothing about the user', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', 'bob:165536:65536\n');
  machine.commands.set('/usr/bin/getsubids', () => done('0: alice 100000 65536\n'));
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /from getsubids alice/);
});

test('subuid: overlaps are found between owners written by name and by uid, comments skipped', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', '# ranges\nalice:100000:65536\n1001:120000:10\n');
  const result = await runCheck(checkSubuids, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /overlaps 1001's 120000-120009/);
});

test('suggestFreeRange skips every used range', (t) => {
  t.deepEqual(suggestFreeRange([]), { start: 100000, count: 65536 });
  t.deepEqual(suggestFreeRange([{ owner: 'a', start: 100000, count: 65536 }, { owner: 'b', start: 165536, count: 10 }]), { start: 165546, count: 65536 });
  t.deepEqual(suggestFreeRange([{ owner: 'a', start: 300000, count: 65536 }]), { start: 100000, count: 65536 });
});

// ---- newuidmap / newgidmap

test('newuidmap: setuid root is ok', async (t) => {
  const result = await runCheck(checkNewuidmap, healthyMachine(paths), paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /setuid root/);
});

test('newuidmap: file capabilities instead of setuid are ok', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.set('/usr/bin/newuidmap', { type: 'file', mode: 0o755, uid: 0, gid: 0 });
  machine.commands.set('/usr/sbin/getcap', (args) => done(`${args[0]} cap_setuid=ep\n`));
  const result = await runCheck(checkNewuidmap, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /file capabilities cap_setuid=ep/);
});

test('newuidmap: neither setuid nor capabilities warns with chmod u+s and setcap', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.set('/usr/bin/newuidmap', { type: 'file', mode: 0o755, uid: 0, gid: 0 });
  const result = await runCheck(checkNewuidmap, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.fix!, /^sudo chmod u\+s \/usr\/bin\/newuidmap$/m);
  t.regex(result!.fix!, /setcap cap_setuid\+ep \/usr\/bin\/newuidmap/);
  t.regex(result!.breaks!, /single mapping/);
});

test('newgidmap: the wrong capability (old getcap format) is not enough', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.set('/usr/bin/newgidmap', { type: 'file', mode: 0o755, uid: 0, gid: 0 });
  machine.commands.set('/usr/sbin/getcap', (args) => done(`${args[0]} = cap_setuid+ep\n`));
  const result = await runCheck(checkNewgidmap, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /it has cap_setuid\+ep/);
  t.regex(result!.fix!, /setcap cap_setgid\+ep/);
});

test('newuidmap: not setuid and no getcap to ask says so', async (t) => {
  const machine = healthyMachine(paths);
  machine.stats.set('/usr/bin/newuidmap', { type: 'file', mode: 0o755, uid: 0, gid: 0 });
  uninstall(machine, 'getcap');
  const result = await runCheck(checkNewuidmap, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.fix!, /sudo apt-get install libcap2-bin/);
});

test('newuidmap: missing warns with the distribution\'s package (Fedora: shadow-utils)', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/os-release', 'ID=fedora\nVERSION_ID=40\n');
  uninstall(machine, 'newuidmap');
  const result = await runCheck(checkNewuidmap, machine, paths);
  t.is(result?.status, 'warn');
  t.is(result!.fix, 'sudo dnf install shadow-utils');
});

test('newuidmap: missing is fine for a user without subordinate uids (nothing to map)', async (t) => {
  const machine = healthyMachine(paths);
  machine.files.set('/etc/subuid', '');
  uninstall(machine, 'newuidmap');
  const result = await runCheck(checkNewuidmap, machine, paths);
  t.is(result?.status, 'ok');
  t.regex(result!.detail, /not needed/);
});

test('newgidmap: not executable by the user warns', async (t) => {
  const machine = healthyMachine(paths);
  machine.notExecutable.add('/usr/bin/newgidmap');
  const result = await runCheck(checkNewgidmap, machine, paths);
  t.is(result?.status, 'warn');
  t.regex(result!.detail, /not executable by alice/);
});

test('parseGetcap reads both getcap formats', (t) => {
  t.is(parseGetcap('/usr/bin/newuidmap cap_setuid=ep\n', '/usr/bin/newuidmap'), 'cap_setuid=ep');
  t.is(parseGetcap('/usr/bin/newuidmap = cap_setuid+ep\n', '/usr/bin/newuidmap'), 'cap_setuid+ep');
  t.is(parseGetcap('', '/usr/bin/newuidmap'), null);
});
