/**
 * Resource flags -> OCI resources -> cgroup files and systemd properties;
 * stats files; the cgroupfs manager on a fake cgroup file system (a temporary
 * directory laid out as /sys/fs/cgroup); the refusal of limits whose
 * controller is not delegated. The real kernel and systemd: test/vm.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupfsManager } from '../../src/cgroups/cgroupfs.js';
import { checkLimitsPossible, type ContainerCgroup } from '../../src/cgroups/manager.js';
import {
  blkioToIoWeight,
  cgroupFiles,
  cpuListToMask,
  mergeOciResources,
  parseBytes,
  parseResourceFlags,
  requiredControllers,
  resourcesFromOci,
  sharesToWeight,
  systemdProperties,
} from '../../src/cgroups/resources.js';
import { cgroupfsParent } from '../../src/cgroups/select.js';
import { parseIoStat, parseKeyValues, readCgroupStats } from '../../src/cgroups/stats.js';
import { NookError } from '../../src/lib/errors.js';
import type { CgroupFacts } from '../../src/host/cgroup-manager.js';

const MiB = 1024 * 1024;

test('sizes as podman reads them', (t) => {
  t.is(parseBytes('512m', '--memory'), 512 * MiB);
  t.is(parseBytes('1g', '--memory'), 1024 * MiB);
  t.is(parseBytes('1.5G', '--memory'), 1536 * MiB);
  t.is(parseBytes('100000', '--memory'), 100000);
  t.is(parseBytes('64MiB', '--memory'), 64 * MiB);
  t.is(parseBytes('2kb', '--memory'), 2048);
  t.throws(() => parseBytes('lots', '--memory'), { message: /invalid --memory "lots"/ });
});

test('flags become OCI linux.resources, with podman\'s rules', (t) => {
  t.is(parseResourceFlags({}), undefined);
  t.deepEqual(parseResourceFlags({ memory: '64m' }), { memory: { limit: 64 * MiB, swap: 128 * MiB } }, 'swap as much as memory by default');
  t.deepEqual(parseResourceFlags({ memory: '64m', memorySwap: '-1' }), { memory: { limit: 64 * MiB, swap: -1 } });
  t.deepEqual(parseResourceFlags({ cpus: '0.5' }), { cpu: { period: 100000, quota: 50000 } });
  t.deepEqual(parseResourceFlags({ cpuShares: '512', cpusetCpus: '0-1,3' }), { cpu: { shares: 512, cpus: '0-1,3' } });
  t.deepEqual(parseResourceFlags({ cpuWeight: '300' }), { unified: { 'cpu.weight': '300' } });
  t.deepEqual(parseResourceFlags({ pidsLimit: '100' }), { pids: { limit: 100 } });
  t.deepEqual(parseResourceFlags({ pidsLimit: '0' }), { pids: { limit: -1 } });
  t.deepEqual(parseResourceFlags({ blkioWeight: '500' }), { blockIO: { weight: 500 } });
  t.throws(() => parseResourceFlags({ memorySwap: '1g' }), { message: /--memory-swap needs --memory/ });
  t.throws(() => parseResourceFlags({ memory: '1g', memorySwap: '512m' }), { message: /at least --memory/ });
  t.throws(() => parseResourceFlags({ memory: '1m' }), { message: /minimum is 6m/ });
  t.throws(() => parseResourceFlags({ cpus: '-1' }), { message: /invalid --cpus/ });
  t.throws(() => parseResourceFlags({ cpusetCpus: '3-1' }), { message: /invalid --cpuset-cpus/ });
  t.throws(() => parseResourceFlags({ cpuShares: '1', cpuWeight: '1' }), { message: /not both/ });
  t.throws(() => parseResourceFlags({ blkioWeight: '5' }), { message: /between 10 and 1000/ });
});

test('OCI resources become cgroup v2 files as crun writes them', (t) => {
  const r = resourcesFromOci({
    memory: { limit: 64 * MiB, swap: 96 * MiB, reservation: 32 * MiB },
    cpu: { quota: 20000, period: 100000, shares: 1024, cpus: '0' },
    pids: { limit: 5 },
    blockIO: { weight: 500 },
  });
  t.deepEqual(cgroupFiles(r), [
    ['cpuset.cpus', '0'],
    ['memory.low', String(32 * MiB)],
    ['memory.max', String(64 * MiB)],
    ['memory.swap.max', String(32 * MiB)],
    ['cpu.max', '20000 100000'],
    ['cpu.weight', '39'],
    ['pids.max', '5'],
    ['io.weight', 'default 4950'],
  ]);
  t.deepEqual(cgroupFiles(resourcesFromOci({ memory: { limit: 64 * MiB, swap: -1 }, pids: { limit: -1 } })), [
    ['memory.max', String(64 * MiB)],
    ['memory.swap.max', 'max'],
    ['pids.max', 'max'],
  ]);
  t.is(sharesToWeight(2), 1);
  t.is(sharesToWeight(262144), 10000);
  t.is(blkioToIoWeight(10), 1);
  t.is(blkioToIoWeight(1000), 10000);
  t.is(resourcesFromOci({ unified: { 'cpu.weight': '300' } }).cpuWeight, 300);
  t.throws(() => resourcesFromOci({ unified: { 'hugetlb.2MB.max': '1' } }), { message: /not supported/ });
});

test('the same limits as systemd properties', (t) => {
  const props = systemdProperties(resourcesFromOci({ memory: { limit: 50 * MiB, swap: -1 }, cpu: { quota: 20000, period: 100000, cpus: '0-2,9' }, pids: { limit: 5 } }));
  t.deepEqual(props, [
    { name: 'MemoryMax', signature: 't', values: [String(50 * MiB)] },
    { name: 'MemorySwapMax', signature: 't', values: ['18446744073709551615'] },
    { name: 'CPUQuotaPerSecUSec', signature: 't', values: ['200000'] },
    { name: 'CPUQuotaPeriodUSec', signature: 't', values: ['100000'] },
    { name: 'AllowedCPUs', signature: 'ay', values: ['2', '7', '2'] },
    { name: 'TasksMax', signature: 't', values: ['5'] },
  ]);
  t.deepEqual(cpuListToMask('8'), [0, 1]);
});

test('nook update merges into the recorded limits', (t) => {
  const base = parseResourceFlags({ memory: '64m', pidsLimit: '50' })!;
  const merged = mergeOciResources(base, parseResourceFlags({ memory: '128m' }, { update: true })!);
  t.deepEqual(merged, { memory: { limit: 128 * MiB, swap: 256 * MiB }, pids: { limit: 50 } });
  const unlimitedSwap = mergeOciResources({ memory: { limit: 64 * MiB, swap: -1 } }, parseResourceFlags({ memory: '128m' }, { update: true })!);
  t.is(unlimitedSwap.memory?.swap, -1, 'unlimited swap stays unlimited');
  t.throws(() => mergeOciResources(base, parseResourceFlags({ memorySwap: '32m' }, { update: true })!), { message: /at least --memory/ });
  const weight = mergeOciResources({ cpu: { shares: 512 } }, parseResourceFlags({ cpuWeight: '300' }, { update: true })!);
  t.deepEqual(weight, { cpu: {}, unified: { 'cpu.weight': '300' } }, 'the last of --cpu-shares and --cpu-weight wins');
});

test('a limit whose controller is not delegated is refused, naming the controller and the fix', (t) => {
  const systemd: ContainerCgroup = { manager: 'systemd', controllers: ['cpu', 'memory', 'pids'] };
  const cpuset = resourcesFromOci(parseResourceFlags({ cpusetCpus: '0', memory: '64m' }));
  const error = t.throws(() => checkLimitsPossible(cpuset, systemd, 'systemd'), { instanceOf: NookError });
  t.regex(error!.message, /^--cpuset-cpus needs the cpuset cgroup controller, which systemd does not delegate to you \(delegated: cpu memory pids\)/);
  t.regex(error!.message, /Delegate=cpu cpuset io memory pids/);
  t.notRegex(error!.message, /--memory/);
  t.notThrows(() => checkLimitsPossible(resourcesFromOci(parseResourceFlags({ memory: '64m', pidsLimit: '5', cpus: '1' })), systemd, 'systemd'));
  const none: ContainerCgroup = { manager: 'none', controllers: [] };
  t.throws(() => checkLimitsPossible(resourcesFromOci(parseResourceFlags({ memory: '64m' })), none, 'cgroup v1'), { message: /^--memory: resource limits are unavailable \(cgroup v1\)/ });
  t.notThrows(() => checkLimitsPossible({}, none, 'cgroup v1'), 'no limit asked: the container runs');
  t.deepEqual([...requiredControllers(resourcesFromOci(parseResourceFlags({ memory: '64m', blkioWeight: '100' })))], [
    ['memory', ['--memory']],
    ['io', ['--blkio-weight']],
  ]);
});

test('stats files', (t) => {
  t.deepEqual(parseKeyValues('anon 4096\nfile 8192\nweird x\n'), { anon: 4096, file: 8192 });
  t.deepEqual(parseIoStat('8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n253:0 rbytes=1 wbytes=2 rios=3 wios=4\n'), { readBytes: 101, writeBytes: 202, reads: 4, writes: 6 });
  const dir = mkdtempSync(join(tmpdir(), 'nook-cgstats-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'memory.current': '1048576\n',
    'memory.max': '33554432\n',
    'memory.stat': 'anon 524288\nfile 0\n',
    'memory.events': 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n',
    'cpu.stat': 'usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\nnr_periods 30\nnr_throttled 25\nthrottled_usec 90000\n',
    'pids.current': '3\n',
    'pids.max': 'max\n',
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  t.deepEqual(readCgroupStats(dir), {
    memory: { usage: MiB, limit: 32 * MiB, stat: { anon: 524288, file: 0 }, events: { low: 0, high: 0, max: 12, oom: 1, oom_kill: 1 } },
    cpu: { usageUsec: 5000, userUsec: 4000, systemUsec: 1000, periods: 30, throttledPeriods: 25, throttledUsec: 90000 },
    pids: { current: 3, limit: null },
  });
  t.deepEqual(readCgroupStats(join(dir, 'missing')), {});
});

/** A fake /sys/fs/cgroup: the parent cgroup with its interface files. */
function fakeCgroupRoot(t: import('ava').ExecutionContext, parentProcs = ''): { root: string; parent: string } {
  const root = mkdtempSync(join(tmpdir(), 'nook-cgfs-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const parent = join(root, 'user.slice/service');
  mkdirSync(parent, { recursive: true });
  writeFileSync(join(parent, 'cgroup.controllers'), 'cpuset cpu io memory pids hugetlb\n');
  writeFileSync(join(parent, 'cgroup.subtree_control'), '');
  writeFileSync(join(parent, 'cgroup.procs'), parentProcs);
  return { root, parent };
}

test('cgroupfs: the container\'s cgroup under the parent, controllers enabled, limits written, joined through cgroup.procs', async (t) => {
  const { root, parent } = fakeCgroupRoot(t);
  const manager = new CgroupfsManager({ root, ownCgroup: () => '/elsewhere', removeDirectory: (p) => rmSync(p, { recursive: true }) });
  const cgroup: ContainerCgroup = { manager: 'cgroupfs', controllers: ['cpu', 'memory', 'pids'], parent };
  const placement = await manager.create(cgroup, 'abc', resourcesFromOci(parseResourceFlags({ memory: '32m', pidsLimit: '5', cpus: '0.2' })));
  const dir = join(parent, 'nook-abc');
  t.is(placement.joinCgroup, join(dir, 'cgroup.procs'));
  t.is(placement.path(), dir);
  t.deepEqual(placement.record(), { ...cgroup, path: dir });
  t.is(readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8'), '+cpu +cpuset +io +memory +pids', 'every usual controller the parent has');
  t.is(readFileSync(join(dir, 'memory.max'), 'utf8'), String(32 * MiB));
  t.is(readFileSync(join(dir, 'memory.swap.max'), 'utf8'), String(32 * MiB));
  t.is(readFileSync(join(dir, 'pids.max'), 'utf8'), '5');
  t.is(readFileSync(join(dir, 'cpu.max'), 'utf8'), '20000 100000');

  await manager.update(placement.record(), resourcesFromOci({ memory: { limit: 64 * MiB } }));
  t.is(readFileSync(join(dir, 'memory.max'), 'utf8'), String(64 * MiB));

  writeFileSync(join(dir, 'memory.current'), '4096\n');
  t.is(manager.stats(placement.record()).memory?.usage, 4096);

  // a second start of the same container replaces a leftover cgroup
  writeFileSync(join(dir, 'cgroup.procs'), '');
  const again = await manager.create(cgroup, 'abc', {});
  t.false(existsSync(join(dir, 'memory.max')), 'made anew');
  await manager.destroy(again.record());
  t.false(existsSync(dir));
  await t.notThrowsAsync(manager.destroy(again.record()), 'nothing to do when it is gone');
});

test('cgroupfs: a parent with processes that is nook\'s own cgroup has them moved into nook-init first', (t) => {
  const { root, parent } = fakeCgroupRoot(t, '4242\n');
  const subtree = join(parent, 'cgroup.subtree_control');
  const procs = join(parent, 'cgroup.procs');
  const initProcs = join(parent, 'nook-init', 'cgroup.procs');
  const manager = new CgroupfsManager({ root, ownCgroup: () => '/user.slice/service' });
  // The fake kernel: enabling controllers while the cgroup holds a process is EBUSY; a pid written to nook-init leaves it.
  const moved: string[] = [];
  let subtreeWrites = 0;
  const kernel = (path: string, data: string) => {
    if (path === subtree) {
      subtreeWrites++;
      if (readFileSync(procs, 'utf8').trim() !== '') throw Object.assign(new Error('EBUSY: resource busy'), { code: 'EBUSY' });
    }
    if (path === initProcs) {
      moved.push(data);
      writeFileSync(procs, '');
      return;
    }
    writeFileSync(path, data);
  };
  manager['enableControllers'](parent, ['memory', 'pids'], kernel);
  t.deepEqual(moved, ['4242']);
  t.is(subtreeWrites, 2);
  t.is(readFileSync(subtree, 'utf8'), '+memory +pids');
});

test('cgroupfs: another cgroup with processes is not emptied behind the user\'s back', (t) => {
  const { root, parent } = fakeCgroupRoot(t, '4242\n');
  const subtree = join(parent, 'cgroup.subtree_control');
  const manager = new CgroupfsManager({ root, ownCgroup: () => '/elsewhere' });
  const kernel = (path: string, data: string) => {
    if (path === subtree) throw Object.assign(new Error('EBUSY: resource busy'), { code: 'EBUSY' });
    writeFileSync(path, data);
  };
  t.throws(() => manager['enableControllers'](parent, ['memory'], kernel), { message: /it holds processes/ });
  t.false(existsSync(join(parent, 'nook-init')));
});

test('cgroupfs parent: --cgroup-parent, nook\'s own cgroup, or the parent of nook-init', (t) => {
  const facts = (ownDir: string | null): CgroupFacts => ({ version: 'v2', ownPath: null, ownDir, ownDirWritable: true, ownControllers: [], ownSubtreeControl: [], systemd: { pid1: false, busPath: null, userManager: null, delegatedControllers: null, lingering: false } });
  t.is(cgroupfsParent(facts('/sys/fs/cgroup/ci'), undefined), '/sys/fs/cgroup/ci');
  t.is(cgroupfsParent(facts('/sys/fs/cgroup/ci/nook-init'), undefined), '/sys/fs/cgroup/ci');
  t.is(cgroupfsParent(facts('/sys/fs/cgroup/ci'), '/other/place'), '/sys/fs/cgroup/other/place');
  t.is(cgroupfsParent(facts(null), undefined), null);
});
