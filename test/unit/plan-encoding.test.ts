/**
 * The plan's wire format, checked against the real decoder: `nook-exec
 * --decode` reads what encodePlan wrote and prints it back as JSON, which
 * must be the plan we started from (with defaults filled in).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { NookError } from '../../src/lib/errors.js';
import { executorPath } from '../../src/runtime/executor.js';
import { encodePlan, DEFAULT_UMASK } from '../../src/runtime/plan-encoding.js';
import type { ExecutorPlan, PlanOp } from '../../src/runtime/plan.js';

const RLIM_INFINITY = (1n << 64n) - 1n;

function decode(input: Buffer): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(executorPath(), ['--decode'], { input, encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const allOps: PlanOp[] = [
  { op: 'mount', source: 'none', target: '/', fstype: '', flags: 0x4000 | 0x40000, data: '', inRoot: false, ensure: 'none' },
  { op: 'chdir', path: '/var/lib/layers' },
  { op: 'spawn-mount', args: ['fuse-overlayfs', '-f', '-o', 'lowerdir=a:b,upperdir=/u,workdir=/w', '/merged'], target: '/merged' },
  { op: 'set-root', path: '/merged' },
  { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: 14, data: 'hidepid=2', inRoot: true, ensure: 'dir', optional: true },
  { op: 'mount', source: '', target: '/etc/hosts', fstype: '', flags: 0x1000 | 0x20 | 1, data: '', inRoot: true, ensure: 'file', keepLockedFlags: true },
  { op: 'mkdir', path: '/run/secrets', mode: 0o1777, inRoot: true },
  { op: 'symlink', target: '/proc/self/fd', path: '/dev/fd', inRoot: true },
  { op: 'write-file', path: '/etc/hostname', content: 'box\n"quoted" \\ tab\t ünïcødé ☃ \u0001\n', inRoot: true },
  { op: 'write-file', path: '/empty', content: '', inRoot: false },
  { op: 'sethostname', name: 'box' },
  { op: 'pivot-root', path: '/merged' },
  { op: 'umount', target: '/old', flags: 2 },
  { op: 'mask', path: '/proc/kcore' },
  { op: 'readonly', path: '/proc/sys' },
  { op: 'sync', name: 'createRuntime hooks' },
];

function fullPlan(): ExecutorPlan {
  return {
    trace: true,
    hold: true,
    startFifo: '/run/nook-runtime/c/exec.fifo',
    joinCgroup: '/sys/fs/cgroup/user.slice/nook-1/cgroup.procs',
    user: {
      mode: 'new',
      uidMap: [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }],
      gidMap: [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 4294901760, count: 65535 }],
      uidHelper: '/usr/bin/newuidmap',
      gidHelper: null,
      setgroups: 'deny',
    },
    namespaces: [{ type: 'mnt' }, { type: 'net' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }, { type: 'cgroup' }, { type: 'uts', path: '/proc/42/ns/uts' }],
    portForwards: [
      { hostIp: '0.0.0.0', hostPort: 8080, containerIp: '10.0.2.100', containerPort: 80 },
      { hostIp: '127.0.0.1', hostPort: 65535, containerIp: '10.42.0.100', containerPort: 1 },
    ],
    outerOps: allOps.slice(0, 3),
    innerOps: allOps.slice(3),
    process: {
      args: ['sh', '-c', 'echo "$HOME" && exit 3', ''],
      env: ['PATH=/usr/bin:/bin', 'HOME=/root', 'EMPTY='],
      cwd: '/home/tester',
      uid: 1000,
      gid: 100,
      additionalGids: [10, 4294967294],
      capabilities: {
        bounding: String((1n << 41n) - 1n),
        effective: '1024',
        permitted: '1024',
        inheritable: '0',
        ambient: '18446744073709551615',
      },
      noNewPrivileges: true,
      seccompFilter: '2000000000000000060000000000ff7f',
      rlimits: [
        { resource: 7, soft: 1024, hard: 4096 },
        { resource: 4, soft: RLIM_INFINITY, hard: RLIM_INFINITY },
      ],
      oomScoreAdj: -1000,
      searchPath: true,
      terminal: true,
      consoleSize: { rows: 50, cols: 132 },
      umask: 0o077,
    },
    monitor: {
      mode: 'detached',
      logPath: '/run/nook/c/ctr.log',
      exitFile: '/run/nook/exits/c',
      pidFile: '/run/nook/c/pid',
      onExit: ['/usr/bin/node', '/opt/nook/main.js', 'container', 'cleanup', 'c'],
      dieWithParent: false,
      consoleSocket: '/run/conmon/console.sock',
      terminalStdin: true,
    },
  };
}

/** The plan as --decode prints it: every optional field present, 64-bit numbers as strings. */
function expectedJson(plan: ExecutorPlan): unknown {
  const ops = (list: PlanOp[]) =>
    list.map((op) => (op.op === 'mount' ? { ...op, keepLockedFlags: op.keepLockedFlags ?? false, optional: op.optional ?? false } : op));
  const user = plan.user;
  return {
    trace: plan.trace,
    user,
    joinCgroup: plan.joinCgroup ?? null,
    hold: plan.hold ?? false,
    holdBeforeNamespaces: plan.holdBeforeNamespaces ?? false,
    watchOom: plan.watchOom ?? false,
    startFifo: plan.startFifo ?? null,
    portForwards: plan.portForwards ?? [],
    namespaces: plan.namespaces.map((ns) => ({ type: ns.type, path: ns.path ?? null })),
    outerOps: ops(plan.outerOps),
    innerOps: ops(plan.innerOps),
    process: {
      ...plan.process,
      rlimits: plan.process.rlimits.map((r) => ({ resource: r.resource, soft: String(r.soft), hard: String(r.hard) })),
      terminal: plan.process.terminal ?? false,
      consoleSize: plan.process.consoleSize ?? null,
      umask: plan.process.umask === undefined ? DEFAULT_UMASK : plan.process.umask,
    },
    monitor: {
      mode: plan.monitor.mode,
      logPath: plan.monitor.logPath ?? null,
      exitFile: plan.monitor.exitFile ?? null,
      pidFile: plan.monitor.pidFile ?? null,
      onExit: plan.monitor.onExit ?? [],
      dieWithParent: plan.monitor.dieWithParent,
      consoleSocket: plan.monitor.consoleSocket ?? null,
      terminalStdin: plan.monitor.terminalStdin ?? false,
    },
  };
}

test('every field and op survives encoding and the C decoder', (t) => {
  const plan = fullPlan();
  const result = decode(encodePlan(plan));
  t.is(result.status, 0, result.stderr);
  t.deepEqual(JSON.parse(result.stdout), expectedJson(plan));
});

test('a minimal plan: no user namespace, defaults, joined user namespace', (t) => {
  const plan: ExecutorPlan = {
    trace: false,
    user: { mode: 'none' },
    namespaces: [],
    outerOps: [],
    innerOps: [],
    process: {
      args: ['/bin/true'],
      env: [],
      cwd: '/',
      uid: 0,
      gid: 0,
      additionalGids: [],
      capabilities: null,
      noNewPrivileges: false,
      seccompFilter: null,
      rlimits: [],
      oomScoreAdj: null,
      searchPath: false,
    },
    monitor: { mode: 'foreground', dieWithParent: true },
  };
  const result = decode(encodePlan(plan));
  t.is(result.status, 0, result.stderr);
  t.deepEqual(JSON.parse(result.stdout), expectedJson(plan));

  const joined: ExecutorPlan = { ...plan, user: { mode: 'join', path: '/proc/123/ns/user' }, process: { ...plan.process, umask: null } };
  const result2 = decode(encodePlan(joined));
  t.is(result2.status, 0, result2.stderr);
  t.deepEqual(JSON.parse(result2.stdout), expectedJson(joined));
});

test('the wire format starts with the length of the plan', (t) => {
  const encoded = encodePlan(fullPlan());
  const newline = encoded.indexOf(0x0a);
  t.is(Number(encoded.subarray(0, newline).toString()), encoded.length - newline - 1);
  t.true(encoded.subarray(newline + 1).toString().startsWith('nook-plan/1\0'));
});

test('the encoder refuses what the kernel could not take', (t) => {
  const withArgs = (args: string[]) => ({ ...fullPlan(), process: { ...fullPlan().process, args } });
  t.throws(() => encodePlan(withArgs(['sh', 'a\0b'])), { instanceOf: NookError, message: /NUL/ });
  t.throws(() => encodePlan(withArgs([])), { instanceOf: NookError, message: /no command/ });
  t.throws(() => encodePlan({ ...fullPlan(), process: { ...fullPlan().process, uid: -1 } }), { instanceOf: NookError, message: /uid/ });
  t.throws(() => encodePlan({ ...fullPlan(), process: { ...fullPlan().process, seccompFilter: 'abc' } }), { instanceOf: NookError, message: /seccomp/ });
  t.throws(() => encodePlan({ ...fullPlan(), process: { ...fullPlan().process, rlimits: [{ resource: 1, soft: -1, hard: 0 }] } }), { instanceOf: NookError, message: /rlimit/ });
  t.throws(() => encodePlan({ ...fullPlan(), monitor: { ...fullPlan().monitor, logPath: '' } }), { instanceOf: NookError, message: /log path is empty/ });
  t.throws(() => encodePlan({ ...fullPlan(), hold: false }), { instanceOf: NookError, message: /startFifo needs hold/ });
  t.throws(() => encodePlan({ ...fullPlan(), startFifo: undefined, hold: false }), { instanceOf: NookError, message: /sync operation needs hold/ });
  t.throws(() => encodePlan({ ...fullPlan(), monitor: { mode: 'handoff', dieWithParent: false } }), { instanceOf: NookError, message: /handoff mode needs a console socket/ });
  t.throws(() => encodePlan({ ...fullPlan(), process: { ...fullPlan().process, consoleSize: { rows: 70000, cols: 80 } } }), { instanceOf: NookError, message: /console rows/ });
});

test('port forwards: the encoder refuses what the executor could not forward', (t) => {
  const forward = { hostIp: '127.0.0.1', hostPort: 8080, containerIp: '10.0.2.100', containerPort: 80 };
  const withForward = (f: Partial<typeof forward>) => ({ ...fullPlan(), portForwards: [{ ...forward, ...f }] });
  t.notThrows(() => encodePlan(withForward({})));
  t.throws(() => encodePlan(withForward({ hostIp: '::1' })), { instanceOf: NookError, message: /must be IPv4/ });
  t.throws(() => encodePlan(withForward({ containerIp: '10.0.2.300' })), { instanceOf: NookError, message: /must be IPv4/ });
  t.throws(() => encodePlan(withForward({ hostPort: 0 })), { instanceOf: NookError, message: /must be resolved/ });
  t.throws(() => encodePlan(withForward({ containerPort: 65536 })), { instanceOf: NookError, message: /container port/ });
  // the setup process connects from the container's own network namespace, and must stay for its whole life
  t.throws(() => encodePlan({ ...withForward({}), namespaces: [{ type: 'mnt' }, { type: 'net', path: '/proc/1/ns/net' }] }), { instanceOf: NookError, message: /new network namespace/ });
  t.throws(() => encodePlan({ ...withForward({}), monitor: { mode: 'handoff', dieWithParent: false, consoleSocket: '/c.sock' } }), { instanceOf: NookError, message: /not handoff/ });
});

test('port forwards: the decoder checks them too', (t) => {
  const plan: ExecutorPlan = { ...fullPlan(), portForwards: [{ hostIp: '127.0.0.1', hostPort: 8080, containerIp: '10.0.2.100', containerPort: 80 }] };
  const encoded = encodePlan(plan);
  const body = encoded.subarray(encoded.indexOf(0x0a) + 1).toString('latin1');
  const frame = (text: string) => {
    const b = Buffer.from(text, 'latin1');
    return Buffer.concat([Buffer.from(`${b.length}\n`), b]);
  };
  const badIp = decode(frame(body.replace('\x00127.0.0.1\x00', '\x00localhost\x00')));
  t.is(badIp.status, 2);
  t.regex(badIp.stderr, /not IPv4/);
  const badPort = decode(frame(body.replace('\x008080\x00', '\x0070000\x00')));
  t.is(badPort.status, 2);
  t.regex(badPort.stderr, /outside 1-65535/);
  const joinedNet = decode(frame(body.replace('\x00net\x00\x00', '\x00net\x00/proc/1/ns/net\x00')));
  t.is(joinedNet.status, 2);
  t.regex(joinedNet.stderr, /new network namespace/);
});

test('the decoder rejects truncated, corrupt and foreign input', (t) => {
  const encoded = encodePlan(fullPlan());
  const body = encoded.subarray(encoded.indexOf(0x0a) + 1);
  const frame = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length}\n`), b]);

  const truncated = decode(frame(body.subarray(0, body.length - 10)));
  t.is(truncated.status, 2);
  t.regex(truncated.stderr, /cannot decode the plan/);

  const shortRead = decode(encoded.subarray(0, encoded.length - 5));
  t.is(shortRead.status, 2);
  t.regex(shortRead.stderr, /truncated plan/);

  const foreign = decode(frame(Buffer.from('{"trace":true}\0')));
  t.is(foreign.status, 2);
  t.regex(foreign.stderr, /format mismatch/);

  const hugeCount = decode(frame(Buffer.from(body.toString('latin1').replace('nook-plan/1\x001\x00new\x002\x00', 'nook-plan/1\x001\x00new\x0099999999\x00'), 'latin1')));
  t.is(hugeCount.status, 2);
  t.regex(hugeCount.stderr, /count larger than the plan/);

  const noLength = decode(Buffer.from('hello'));
  t.is(noLength.status, 2);
});

test('the executor refuses to run without its pipes', (t) => {
  const result = spawnSync(executorPath(), [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.is(result.status, 125);
  t.regex(result.stderr, /started by nook/);
});
