import test from 'ava';
import { specToPlan, type PlanContext } from '../../src/runtime/spec-to-plan.js';
import { parseMountOptions, MS } from '../../src/runtime/mountflags.js';
import { kernelOverlay, fuseOverlayfs } from '../../src/rootfs/driver.js';
import type { OciSpec } from '../../src/runtime/spec.js';
import type { PlanOp } from '../../src/runtime/plan.js';

const context = (over: Partial<PlanContext> = {}): PlanContext => ({
  rootfsOps: [],
  uidHelper: '/usr/bin/newuidmap',
  gidHelper: '/usr/bin/newgidmap',
  capabilities: null,
  seccompFilter: null,
  monitor: { mode: 'foreground', dieWithParent: true },
  trace: false,
  isDirectory: (p) => !p.endsWith('.conf') && !p.endsWith('hosts'),
  ...over,
});

const spec = (over: Partial<OciSpec> = {}): OciSpec => ({
  ociVersion: '1.2.0',
  process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'true'], env: ['PATH=/bin'], cwd: '/' },
  root: { path: '/ctr/merged' },
  hostname: 'box',
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    { destination: '/etc/hosts', type: 'bind', source: '/ctr/userdata/hosts', options: ['rbind', 'ro'] },
  ],
  linux: {
    namespaces: [{ type: 'user' }, { type: 'mount' }, { type: 'pid' }, { type: 'uts' }],
    uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }, { containerID: 1, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
    maskedPaths: ['/proc/kcore'],
    readonlyPaths: ['/proc/sys'],
  },
  ...over,
});

const opNames = (ops: PlanOp[]) => ops.map((o) => (o.op === 'mount' ? `mount ${o.fstype || 'bind'} ${o.target}` : `${o.op} ${'path' in o ? o.path : 'name' in o ? o.name : ''}`.trim()));

test('mount options split into flags, propagation and data', (t) => {
  const parsed = parseMountOptions(['nosuid', 'rbind', 'rprivate', 'mode=755', 'ro', 'rw', 'size=64k']);
  t.is(parsed.flags, MS.NOSUID | MS.BIND | MS.REC);
  t.is(parsed.propagation, MS.PRIVATE | MS.REC);
  t.is(parsed.data, 'mode=755,size=64k');
});

test('the user namespace is new with both maps and the helpers', (t) => {
  const plan = specToPlan(spec(), context());
  t.deepEqual(plan.user, {
    mode: 'new',
    uidMap: [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }],
    gidMap: [{ inside: 0, outside: 1000, count: 1 }],
    uidHelper: '/usr/bin/newuidmap',
    gidHelper: '/usr/bin/newgidmap',
    setgroups: 'allow',
  });
  t.deepEqual(plan.namespaces, [{ type: 'mnt' }, { type: 'pid' }, { type: 'uts' }]);
});

test('without newgidmap, setgroups is denied so gid_map can be written directly', (t) => {
  const plan = specToPlan(spec(), context({ uidHelper: null, gidHelper: null }));
  t.is(plan.user.mode === 'new' && plan.user.setgroups, 'deny');
});

test('mounts follow runc order: private tree, rootfs, self-bind, spec mounts, devices, hostname, pivot_root, masks', (t) => {
  const rootfsOps = kernelOverlay.mountOps({ lowerDirs: ['/s/layers/b/diff', '/s/layers/a/diff'], upperDir: '/c/upper', workDir: '/c/work', mergedDir: '/ctr/merged' }, {});
  const plan = specToPlan(spec(), context({ rootfsOps }));
  t.deepEqual(opNames(plan.outerOps), ['mount bind /', 'chdir /s/layers', 'mount overlay /ctr/merged']);
  const names = opNames(plan.innerOps);
  t.deepEqual(names.slice(0, 5), ['mount bind /ctr/merged', 'set-root /ctr/merged', 'mount proc /proc', 'mount tmpfs /dev', 'mount bind /etc/hosts']);
  t.true(names.indexOf('mount bind /dev/null') > names.indexOf('mount tmpfs /dev'));
  t.true(names.indexOf('sethostname box') < names.indexOf('pivot-root /ctr/merged'));
  t.deepEqual(names.slice(-2), ['mask /proc/kcore', 'readonly /proc/sys']);
  const overlay = plan.outerOps[2] as Extract<PlanOp, { op: 'mount' }>;
  t.is(overlay.data, 'lowerdir=b/diff:a/diff,upperdir=/c/upper,workdir=/c/work,userxattr');
});

test('a read-only bind is bound first, then remounted read-only keeping locked flags', (t) => {
  const plan = specToPlan(spec(), context());
  const hosts = plan.innerOps.filter((o): o is Extract<PlanOp, { op: 'mount' }> => o.op === 'mount' && o.target === '/etc/hosts');
  t.is(hosts.length, 2);
  t.is(hosts[0]!.ensure, 'file');
  t.is(hosts[0]!.flags & MS.RDONLY, 0);
  t.is(hosts[1]!.flags, MS.BIND | MS.REMOUNT | MS.RDONLY);
  t.true(hosts[1]!.keepLockedFlags);
});

test('proc is bound from the host when the pid namespace is not new', (t) => {
  const s = spec();
  s.linux!.namespaces = [{ type: 'user' }, { type: 'mount' }];
  const plan = specToPlan(s, context());
  const proc = plan.innerOps.find((o) => o.op === 'mount' && o.target === '/proc') as Extract<PlanOp, { op: 'mount' }>;
  t.is(proc.source, '/proc');
  t.truthy(proc.flags & MS.BIND);
  t.false(opNames(plan.innerOps).some((n) => n.startsWith('sethostname')));
});

test('fuse-overlayfs runs as a daemon in the mount namespace', (t) => {
  const ops = fuseOverlayfs.mountOps({ lowerDirs: ['/s/l/a/diff'], upperDir: '/c/u', workDir: '/c/w', mergedDir: '/c/m' }, { fuseOverlayfsPath: '/usr/bin/fuse-overlayfs' });
  t.deepEqual(ops[1], { op: 'spawn-mount', args: ['/usr/bin/fuse-overlayfs', '-f', '-o', 'lowerdir=diff,upperdir=/c/u,workdir=/c/w', '/c/m'], target: '/c/m' });
});

test('a spec without a command or without a mount namespace is refused with one line', (t) => {
  const noArgs = spec();
  noArgs.process!.args = [];
  t.throws(() => specToPlan(noArgs, context()), { message: /no command/ });
  const noMnt = spec();
  noMnt.linux!.namespaces = [{ type: 'user' }];
  t.throws(() => specToPlan(noMnt, context()), { message: /mount namespace/ });
});

test('rlimits are translated to resource numbers', (t) => {
  const s = spec();
  s.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }];
  t.deepEqual(specToPlan(s, context()).process.rlimits, [{ resource: 7, soft: 1024, hard: 2048 }]);
});
