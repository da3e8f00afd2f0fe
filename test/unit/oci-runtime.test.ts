/**
 * nook-runtime's pure parts: runc's rootless spec, ids, signals, bundle
 * paths, sysctl paths, and where the hooks' sync point goes in the plan.
 */
import test from 'ava';
import { tmpdir } from 'node:os';
import { NookError } from '../../src/lib/errors.js';
import { exampleSpec, toRootless } from '../../src/runtime/oci/default-spec.js';
import { bundleSpec, ociPlan } from '../../src/runtime/oci/plan.js';
import { parseSignal } from '../../src/runtime/oci/runtime.js';
import { validateId } from '../../src/runtime/oci/state.js';
import { sysctlPath, specToPlan } from '../../src/runtime/spec-to-plan.js';
import type { OciSpec } from '../../src/runtime/spec.js';

test('toRootless makes runc\'s changes: own ids only, no network namespace, /sys bound, no resources, no gid= options', (t) => {
  const spec = toRootless(exampleSpec(), 1234, 5678);
  t.deepEqual(spec.linux!.uidMappings, [{ containerID: 0, hostID: 1234, size: 1 }]);
  t.deepEqual(spec.linux!.gidMappings, [{ containerID: 0, hostID: 5678, size: 1 }]);
  t.deepEqual(spec.linux!.namespaces!.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'user']);
  t.is(spec.linux!.resources, undefined);
  t.deepEqual(spec.mounts!.find((m) => m.destination === '/sys'), { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  t.deepEqual(spec.mounts!.find((m) => m.destination === '/dev/pts')!.options, ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620']);
  // the example itself is untouched
  t.true(exampleSpec().linux!.namespaces!.some((n) => n.type === 'network'));
});

test('container ids as runc accepts them', (t) => {
  for (const id of ['a', 'abc-1.2_3+x', '9555402c1d252c3ad729620bad3568bec3035d537bb74b3b09e644c54ca6cf18', 'n.u.1.0.0']) t.notThrows(() => validateId(id), id);
  for (const id of ['', '.', '..', 'a/b', '../x', 'a b', 'é']) t.throws(() => validateId(id), { instanceOf: NookError, message: /invalid container ID format/ }, id);
});

test('signals by name, with or without SIG, or by number; SIGTERM by default', (t) => {
  t.is(parseSignal(undefined), 15);
  t.is(parseSignal('KILL'), 9);
  t.is(parseSignal('sigkill'), 9);
  t.is(parseSignal('SIGUSR1'), 10);
  t.is(parseSignal('2'), 2);
  t.throws(() => parseSignal('NOPE'), { message: /invalid signal/ });
  t.throws(() => parseSignal('0'), { message: /invalid signal/ });
});

test('a relative root.path is relative to the bundle; bad JSON is one line', (t) => {
  t.is(bundleSpec('/srv/bundle', JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' } })).root!.path, '/srv/bundle/rootfs');
  t.is(bundleSpec('/srv/bundle', JSON.stringify({ ociVersion: '1.0.2', root: { path: '/abs/root', readonly: true } })).root!.path, '/abs/root');
  t.throws(() => bundleSpec('/srv/bundle', '{'), { message: /config\.json of \/srv\/bundle is not valid JSON/ });
  t.throws(() => bundleSpec('/srv/bundle', '{}'), { message: /no root\.path/ });
});

test('sysctl keys become /proc/sys paths; keys that could leave it are refused', (t) => {
  t.is(sysctlPath('net.ipv4.ping_group_range'), '/proc/sys/net/ipv4/ping_group_range');
  t.is(sysctlPath('net/ipv4/conf/eth0.100/forwarding'), '/proc/sys/net/ipv4/conf/eth0.100/forwarding');
  for (const key of ['../etc', 'net..ipv4', 'net/../../etc', '/abs', 'a b', '']) t.throws(() => sysctlPath(key), { message: /invalid sysctl/ }, key);
});

function bundle(extra: Partial<OciSpec> = {}): OciSpec {
  return {
    ociVersion: '1.2.0',
    process: { user: { uid: 0, gid: 0, umask: 0o027 }, args: ['true'], cwd: '/', consoleSize: { height: 30, width: 100 } },
    root: { path: tmpdir() },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'mount' }, { type: 'pid' }], sysctl: { 'kernel.domainname': 'example' }, maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'] },
    ...extra,
  };
}

test('specToPlan: sysctls after pivot_root but before the read-only paths; umask and terminal size from the spec', (t) => {
  const plan = specToPlan(bundle(), { rootfsOps: [], uidHelper: null, gidHelper: null, capabilities: null, seccompFilter: null, monitor: { mode: 'foreground', dieWithParent: true }, trace: false, isDirectory: () => true });
  const kinds = plan.innerOps.map((op) => (op.op === 'write-file' ? `write ${op.path}` : op.op));
  t.true(kinds.indexOf('write /proc/sys/kernel/domainname') > kinds.indexOf('pivot-root'));
  t.true(kinds.indexOf('write /proc/sys/kernel/domainname') < kinds.indexOf('readonly'));
  t.is(plan.process.umask, 0o027);
  t.deepEqual(plan.process.consoleSize, { rows: 30, cols: 100 });
});

test('ociPlan: no capabilities listed means none; hooks before pivot_root put a sync op right before it, and hold', async (t) => {
  const plain = await ociPlan(bundle(), { monitor: { mode: 'handoff', dieWithParent: true }, hold: true, startFifo: '/run/x/exec.fifo', trace: false });
  t.false(plain.innerOps.some((op) => op.op === 'sync'));
  t.deepEqual(plain.process.capabilities, { bounding: '0', effective: '0', permitted: '0', inheritable: '0', ambient: '0' });
  t.is(plain.startFifo, '/run/x/exec.fifo');
  t.true(plain.hold);

  const hooked = await ociPlan(bundle({ hooks: { createContainer: [{ path: '/bin/true' }] } }), { monitor: { mode: 'foreground', dieWithParent: true }, hold: true, trace: false });
  const ops = hooked.innerOps.map((op) => op.op);
  t.is(ops.indexOf('sync') + 1, ops.indexOf('pivot-root'));
  await t.throwsAsync(ociPlan(bundle({ root: { path: '/no/such/rootfs' } }), { monitor: { mode: 'foreground', dieWithParent: true }, hold: true, trace: false }), { message: /rootfs \(\/no\/such\/rootfs\) does not exist/ });
});
