import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFuseOverlayfs, checkKernelOverlay, checkStorageDriver, checkStorageFilesystem, kernelVersion } from '../../src/host/checks-storage.js';
import { probeKernelOverlay } from '../../src/host/kernel-overlay.js';
import { chooseStorageDriver, decideStorageDriver, driverForWhiteouts, type StorageFacts } from '../../src/host/storage-driver.js';
import { NookError } from '../../src/lib/errors.js';
import { done, fakePaths, fakeView, healthyMachine, NFS, runCheck, uninstall, type FakeMachine, removeFakePaths } from './host-fake.js';

test.after.always(removeFakePaths);

const probeRuns = (machine: FakeMachine) => machine.runs.filter((r) => r.file.endsWith('/unshare') && r.args.includes('sh')).length;

const refuseOverlay = (machine: FakeMachine) =>
  machine.commands.set('/usr/bin/unshare', (args) => (args.includes('sh') ? done('nook-probe:userns\n', 32, 'mount: /tmp/x/merged: permission denied.\n') : done()));

// ---- the probe and its cache

test('probe: a working overlay is cached by kernel release; the next call does not probe', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  const first = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.true(first.supported);
  t.false(first.cached);
  t.deepEqual(first.mountOptions, ['userxattr']);
  const args = machine.runs[0]!.args;
  t.deepEqual(args.slice(0, 3), ['--user', '--map-root-user', '--mount']);
  t.regex(args[5]!, /mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work,userxattr merged/);
  // probed under the storage root, and cleaned up
  t.true(args[7]!.startsWith(join(paths.root, '.overlay-probe-')));
  t.deepEqual(readdirSync(paths.root), []);
  const cache = JSON.parse(readFileSync(join(paths.runRoot, 'kernel-overlay.json'), 'utf8')) as { kernelRelease: string; supported: boolean };
  t.is(cache.kernelRelease, '6.8.0-31-generic');

  const second = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.true(second.supported);
  t.true(second.cached);
  t.is(probeRuns(machine), 1);
});

test('probe: a new kernel release probes again', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  await probeKernelOverlay(paths, { view: fakeView(machine) });
  machine.kernelRelease = '6.9.1-generic';
  refuseOverlay(machine);
  const after = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.is(probeRuns(machine), 2);
  t.false(after.supported);
  t.false(after.cached);
  t.regex(after.reason, /kernel 6\.9\.1-generic refuses overlay in a user namespace: mount: .*permission denied/);
  t.deepEqual(after.mountOptions, []);
});

test('probe: refresh ignores the cache', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  await probeKernelOverlay(paths, { view: fakeView(machine) });
  await probeKernelOverlay(paths, { view: fakeView(machine), refresh: true });
  t.is(probeRuns(machine), 2);
});

test('probe: mounting but failing to whiteout is unsupported', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/unshare', () => done('nook-probe:userns\nnook-probe:mounted\n', 1, 'rm: cannot remove \'merged/file\': Operation not permitted\n'));
  const result = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.false(result.supported);
  t.regex(result.reason, /cannot create whiteouts/);
});

test('probe: no user namespace at all is not cached (a sysctl can change without a new kernel)', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/unshare', () => done('', 1, 'unshare: unshare failed: Operation not permitted\n'));
  const result = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.false(result.supported);
  t.regex(result.reason, /cannot create a user namespace/);
  t.false(existsSync(join(paths.runRoot, 'kernel-overlay.json')));
});

test('probe: a timeout is not an answer and is not cached', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.commands.set('/usr/bin/unshare', () => ({ exitCode: null, stdout: 'nook-probe:userns\n', stderr: '', failure: 'timed out' }));
  const result = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.false(result.supported);
  t.regex(result.reason, /did not finish: timed out/);
  t.false(existsSync(join(paths.runRoot, 'kernel-overlay.json')));
});

test('probe: without unshare it says so and guesses nothing', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  uninstall(machine, 'unshare');
  const result = await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.false(result.supported);
  t.regex(result.reason, /unshare is not installed/);
});

test('probe: the cache is keyed by the storage filesystem too', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  await probeKernelOverlay(paths, { view: fakeView(machine) });
  machine.filesystems.set(paths.root, NFS);
  await probeKernelOverlay(paths, { view: fakeView(machine) });
  t.is(probeRuns(machine), 2);
});

// ---- the storage driver decision

const facts = (over: Partial<StorageFacts> = {}): StorageFacts => ({
  kernelOverlay: { supported: true, reason: 'kernel mounts overlay', mountOptions: ['userxattr'], kernelRelease: '6.8', fsType: 0xef53, cached: false },
  fuseOverlayfs: '/usr/bin/fuse-overlayfs',
  devFuse: { usable: true },
  ...over,
});
const noKernel = { supported: false, reason: 'refused', mountOptions: [], kernelRelease: '5.4', fsType: 0xef53, cached: false };

test('storage driver: kernel overlay > fuse-overlayfs > vfs, each with its reason', (t) => {
  const overlay = decideStorageDriver(facts());
  t.is(overlay.driver, 'overlay');
  t.deepEqual(overlay.mountOptions, ['userxattr']);

  const fuse = decideStorageDriver(facts({ kernelOverlay: noKernel }));
  t.is(fuse.driver, 'fuse-overlayfs');
  t.is(fuse.fuseOverlayfsPath, '/usr/bin/fuse-overlayfs');
  t.regex(fuse.reason, /kernel overlay is not usable \(refused\)/);

  const noDevice = decideStorageDriver(facts({ kernelOverlay: noKernel, devFuse: { usable: false, code: 'EACCES' } }));
  t.is(noDevice.driver, 'vfs');
  t.regex(noDevice.reason, /\/dev\/fuse cannot be opened \(EACCES\)/);

  const noBinary = decideStorageDriver(facts({ kernelOverlay: noKernel, fuseOverlayfs: null }));
  t.is(noBinary.driver, 'vfs');
  t.regex(noBinary.reason, /fuse-overlayfs is not installed/);
});

test('storage driver: a requested driver is used, or refused with the reason', (t) => {
  t.is(decideStorageDriver(facts(), 'vfs').driver, 'vfs');
  t.is(decideStorageDriver(facts(), 'fuse-overlayfs').driver, 'fuse-overlayfs');
  const error = t.throws(() => decideStorageDriver(facts({ kernelOverlay: noKernel }), 'overlay'), { instanceOf: NookError });
  t.regex(error!.message, /storage driver overlay is not usable here: refused/);
  t.throws(() => decideStorageDriver(facts({ fuseOverlayfs: null }), 'fuse-overlayfs'), { message: /fuse-overlayfs is not installed/ });
});

test('storage driver: an image with .wh. whiteout files runs on fuse-overlayfs, or is refused with the reason', (t) => {
  const f = facts();
  const overlay = decideStorageDriver(f);
  t.is(driverForWhiteouts(overlay, 'overlay', f), overlay);
  const switched = driverForWhiteouts(overlay, 'aufs', f);
  t.is(switched.driver, 'fuse-overlayfs');
  t.regex(switched.reason, /only fuse-overlayfs reads/);
  t.is(driverForWhiteouts(decideStorageDriver(f, 'fuse-overlayfs'), 'aufs', f, 'fuse-overlayfs').driver, 'fuse-overlayfs');
  t.throws(() => driverForWhiteouts(decideStorageDriver(f, 'vfs'), 'aufs', f, 'vfs'), { message: /storage driver vfs cannot run this image: .* use --storage-driver fuse-overlayfs/ });
  const noFuse = facts({ fuseOverlayfs: null });
  t.throws(() => driverForWhiteouts(decideStorageDriver(noFuse), 'aufs', noFuse), { message: /cannot run this image: .*fuse-overlayfs is not installed/ });
});

test('chooseStorageDriver: reads the cached probe and the fuse facts', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  refuseOverlay(machine);
  const choice = await chooseStorageDriver(paths, { view: fakeView(machine) });
  t.is(choice.driver, 'fuse-overlayfs');
});

// ---- the checks

test('checks: a healthy machine has the kernel overlay and everything ok', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  for (const check of [checkKernelOverlay, checkFuseOverlayfs, checkStorageDriver, checkStorageFilesystem]) {
    t.is((await runCheck(check, machine, paths))?.status, 'ok');
  }
});

test('checks: no kernel overlay warns and names the fallback; fuse missing then warns too', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  refuseOverlay(machine);
  const kernel = await runCheck(checkKernelOverlay, machine, paths);
  t.is(kernel?.status, 'warn');
  t.regex(kernel!.breaks!, /nook uses fuse-overlayfs instead/);

  uninstall(machine, 'fuse-overlayfs');
  const fuse = await runCheck(checkFuseOverlayfs, machine, paths);
  t.is(fuse?.status, 'warn');
  t.is(fuse!.fix, 'sudo apt-get install fuse-overlayfs');
  const driver = await runCheck(checkStorageDriver, machine, paths);
  t.is(driver?.status, 'warn');
  t.regex(driver!.detail, /^vfs: /);
});

test('checks: an old kernel is told to upgrade', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.kernelRelease = '5.4.0-150-generic';
  refuseOverlay(machine);
  const kernel = await runCheck(checkKernelOverlay, machine, paths);
  t.regex(kernel!.fix!, /predates 5\.11/);
  t.deepEqual(kernelVersion('5.10.0-28-amd64'), [5, 10]);
  t.is(kernelVersion('garbage'), null);
});

test('checks: /dev/fuse 0600 warns with chmod when fuse is needed, and is ok when the kernel overlay works', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.devices.set('/dev/fuse', { usable: false, code: 'EACCES' });
  const notNeeded = await runCheck(checkFuseOverlayfs, machine, paths);
  t.is(notNeeded?.status, 'ok');
  t.regex(notNeeded!.detail, /EACCES.*not needed/);

  refuseOverlay(machine);
  const needed = await runCheck(checkFuseOverlayfs, machine, paths);
  t.is(needed?.status, 'warn');
  t.regex(needed!.fix!, /^sudo chmod 0666 \/dev\/fuse/);
  t.regex(needed!.breaks!, /vfs/);

  machine.devices.set('/dev/fuse', { usable: false, code: 'ENOENT' });
  t.regex((await runCheck(checkFuseOverlayfs, machine, paths))!.fix!, /sudo modprobe fuse/);
});

test('checks: storage on an NFS home fails with --root on a local disk', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.filesystems.set(paths.root, NFS);
  const result = await runCheck(checkStorageFilesystem, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.detail, /is on nfs/);
  t.regex(result!.fix!, /nook --root \/var\/tmp\/alice\/nook/);
  // the kernel overlay check gives the same fix, not an upgrade hint
  refuseOverlay(machine);
  t.regex((await runCheck(checkKernelOverlay, machine, paths))!.fix!, /--root/);
});

test('checks: a storage root not created yet is judged by its nearest existing parent', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.filesystems.delete(paths.root);
  machine.filesystems.set('/', 0x0bd00bd0);
  const result = await runCheck(checkStorageFilesystem, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.detail, /not created yet; \/ examined\) is on lustre/);
});

test('checks: a storage root the user cannot write fails', async (t) => {
  const paths = fakePaths();
  const machine = healthyMachine(paths);
  machine.writable.delete(paths.root);
  const result = await runCheck(checkStorageFilesystem, machine, paths);
  t.is(result?.status, 'fail');
  t.regex(result!.fix!, /sudo chown -R alice /);
});
