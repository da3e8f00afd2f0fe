/**
 * The executor for real, as an unprivileged user: new user namespaces with
 * the user's subordinate ids written by newuidmap, mount and pid namespaces,
 * a busybox root with pivot_root and a fresh /proc, kernel overlay and
 * fuse-overlayfs roots, errors and exit codes, signals, detached containers,
 * and runInUserNamespace on files owned by subordinate ids.
 *
 * Needs: /bin/busybox statically linked (Debian: busybox-static), newuidmap
 * and newgidmap, fuse-overlayfs, and subordinate ids for the user running
 * the tests (the harness's nooktest has 65536).
 */
import test, { type ExecutionContext } from 'ava';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { computeIdMapping, hostIdFor, newUserNamespacePlan, type IdMapping } from '../../src/idmap/mapping.js';
import { findProgram } from '../../src/lib/programs.js';
import { removeInUserNamespace, runInUserNamespace } from '../../src/idmap/userns.js';
import { ExecutorError, startExecutor, type ExecutorHandle, type ExecutorOptions } from '../../src/runtime/executor.js';
import type { ExecutorPlan, PlanOp, ProcessPlan } from '../../src/runtime/plan.js';
import { exchange } from '../helpers/tcp.js';

const MS = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, BIND: 0x1000, REC: 0x4000, PRIVATE: 0x40000 };
const APPLETS = ['sh', 'echo', 'cat', 'id', 'ls', 'sleep', 'hostname', 'mkdir', 'grep', 'touch', 'test', 'mount', 'true'];

let mappingPromise: Promise<IdMapping> | undefined;
/** The test user's full mapping; a test user without subordinate ids is a broken setup, not a skip. */
async function fullMapping(t: ExecutionContext): Promise<IdMapping> {
  mappingPromise ??= computeIdMapping();
  const mapping = await mappingPromise;
  if (mapping.warnings.length) t.fail(`the test user needs subordinate ids and newuidmap: ${mapping.warnings.join('; ')}`);
  return mapping;
}

function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `nook-exec-test-${prefix}-`));
  // Files in it may belong to subordinate ids (and overlay's work dir is mode 000): remove as root of the namespace.
  t.teardown(async () => {
    await removeInUserNamespace(dir).catch(() => rmSync(dir, { recursive: true, force: true }));
  });
  return dir;
}

/** A 64-bit ELF file with a PT_INTERP program header needs a dynamic loader the test root lacks. */
function hasElfInterpreter(elf: Buffer): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) throw new Error('/bin/busybox is not a 64-bit ELF executable');
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const phnum = elf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

/** A root file system of the host's static busybox: bin/busybox, applet symlinks, /proc, /tmp, /etc. */
function busyboxTree(dir: string): void {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error('/bin/busybox is missing: install busybox-static (apt-get install -y busybox-static)');
  if (hasElfInterpreter(readFileSync(busybox))) throw new Error('/bin/busybox is dynamically linked: install busybox-static');
  for (const sub of ['bin', 'proc', 'tmp', 'etc', 'dev', 'sys']) mkdirSync(join(dir, sub), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of APPLETS) symlinkSync('busybox', join(dir, 'bin', applet));
  chmodSync(join(dir, 'tmp'), 0o1777);
}

interface OverlayDirs {
  lower: string;
  upper: string;
  work: string;
  merged: string;
}

function overlayDirs(t: ExecutionContext): OverlayDirs {
  const base = tempDir(t, 'root');
  const dirs = { lower: join(base, 'lower'), upper: join(base, 'upper'), work: join(base, 'work'), merged: join(base, 'merged') };
  for (const dir of Object.values(dirs)) mkdirSync(dir);
  busyboxTree(dirs.lower);
  return dirs;
}

function processPlan(args: string[], overrides: Partial<ProcessPlan> = {}): ProcessPlan {
  return {
    args,
    env: ['PATH=/usr/bin:/bin', 'HOME=/'],
    cwd: '/',
    uid: 0,
    gid: 0,
    additionalGids: [],
    capabilities: null,
    noNewPrivileges: true,
    seccompFilter: null,
    rlimits: [],
    oomScoreAdj: null,
    searchPath: true,
    ...overrides,
  };
}

/** A container plan: the host's root unless innerOps pivot elsewhere. */
function plan(mapping: IdMapping, args: string[], parts: Partial<ExecutorPlan> = {}): ExecutorPlan {
  return {
    trace: true,
    user: newUserNamespacePlan(mapping),
    namespaces: [{ type: 'mnt' }, { type: 'pid' }, { type: 'uts' }],
    outerOps: [],
    innerOps: [],
    process: processPlan(args),
    monitor: { mode: 'foreground', dieWithParent: true },
    ...parts,
  };
}

/** The ops of a busybox container on `root` (already a mount point or bound onto itself here). */
function containerOps(root: string, extra: PlanOp[] = []): PlanOp[] {
  return [
    { op: 'mount', source: root, target: root, fstype: '', flags: MS.BIND | MS.REC, data: '', inRoot: false, ensure: 'none' },
    { op: 'set-root', path: root },
    { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: '', inRoot: true, ensure: 'dir' },
    { op: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: MS.NOSUID, data: 'mode=755', inRoot: true, ensure: 'dir' },
    { op: 'mount', source: '/dev/null', target: '/dev/null', fstype: '', flags: MS.BIND, data: '', inRoot: true, ensure: 'file' },
    { op: 'symlink', target: '/proc/self/fd', path: '/dev/fd', inRoot: true },
    { op: 'write-file', path: '/etc/hostname', content: 'nook-test\n', inRoot: true },
    { op: 'sethostname', name: 'nook-test' },
    ...extra,
    { op: 'pivot-root', path: root },
    { op: 'readonly', path: '/proc/sys' },
    { op: 'mask', path: '/proc/kcore' },
  ];
}

const privateRoot: PlanOp = { op: 'mount', source: 'none', target: '/', fstype: '', flags: MS.REC | MS.PRIVATE, data: '', inRoot: false, ensure: 'none' };

interface Run {
  handle: ExecutorHandle;
  stdout: () => string;
  stderr: () => string;
  trace: string[];
  /** stdout and stderr read to their end */
  drained: Promise<void>;
}

function ended(stream: NodeJS.ReadableStream | null): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', resolve);
    stream.once('end', resolve);
  });
}

function start(p: ExecutorPlan, options: ExecutorOptions = {}): Run {
  const trace: string[] = [];
  const handle = startExecutor(p, { stdio: ['ignore', 'pipe', 'pipe'], onTrace: (line) => trace.push(line), ...options });
  let out = '';
  let err = '';
  handle.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  handle.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const drained = Promise.all([ended(handle.stdout), ended(handle.stderr)]).then(() => undefined);
  return { handle, stdout: () => out, stderr: () => err, trace, drained };
}

/** Runs to the end; resolves with the output and exit whatever happens. */
async function runToEnd(p: ExecutorPlan, options: ExecutorOptions = {}) {
  const run = start(p, options);
  let error: unknown;
  let exit: { code: number; signal: number | null } | undefined;
  try {
    await run.handle.started;
    exit = await run.handle.exit;
  } catch (e) {
    error = e;
  }
  const monitor = await run.handle.monitorExit;
  await run.drained;
  return { ...run, exit, error, monitor, out: run.stdout(), err: run.stderr() };
}

function subordinateStart(mapping: IdMapping): { start: number; count: number } {
  const entry = mapping.uidMap.find((e) => e.inside === 1)!;
  return { start: entry.outside, count: mapping.uidMap.filter((e) => e.inside > 0).reduce((n, e) => n + e.count, 0) };
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('echo hello in new user, mount and pid namespaces with the subordinate ids mapped', async (t) => {
  const mapping = await fullMapping(t);
  const uid = process.getuid!();
  const sub = subordinateStart(mapping);
  const t0 = performance.now();
  const r = await runToEnd(plan(mapping, ['sh', '-c', 'echo hello; cat /proc/self/uid_map; echo "pid=$$"; id -u']));
  t.log(`start to exit: ${(performance.now() - t0).toFixed(1)} ms`);
  t.is(r.error, undefined, r.err);
  t.deepEqual(r.exit, { code: 0, signal: null });
  t.is(r.monitor.code, 0);
  const lines = r.out.split('\n');
  t.is(lines[0], 'hello');
  t.regex(r.out, new RegExp(`^\\s*0\\s+${uid}\\s+1$`, 'm'));
  t.regex(r.out, new RegExp(`^\\s*1\\s+${sub.start}\\s+${sub.count}$`, 'm'));
  t.regex(r.out, /^pid=1$/m);
  t.regex(r.out, /^0$/m);
  t.true(r.trace.includes('unshare(CLONE_NEWUSER)'));
  t.true(r.trace.some((line) => line.startsWith(`uid_map: 0 ${uid} 1 / 1 ${sub.start} `) && line.includes('newuidmap')));
  t.true(r.trace.includes('unshare(CLONE_NEWPID)'));
});

test('a busybox root on a kernel overlay: pivot_root, a new /proc, PID 1, hostname, writes land in the upper dir', async (t) => {
  const mapping = await fullMapping(t);
  const dirs = overlayDirs(t);
  const script = [
    'echo hello',
    'echo "pid=$$"',
    'hostname',
    'cat /etc/hostname',
    'cat /proc/1/cmdline; echo',
    'ls /',
    'echo written > /newfile',
    'grep " /proc/sys " /proc/self/mountinfo',
    'grep -c "" /proc/self/mountinfo',
  ].join('; ');
  const r = await runToEnd(
    plan(mapping, ['sh', '-c', script], {
      namespaces: [{ type: 'mnt' }, { type: 'pid' }, { type: 'uts' }],
      outerOps: [
        privateRoot,
        { op: 'mount', source: 'overlay', target: dirs.merged, fstype: 'overlay', flags: 0, data: `lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work},userxattr`, inRoot: false, ensure: 'none' },
      ],
      innerOps: containerOps(dirs.merged),
    }),
  );
  t.is(r.error, undefined, `${r.err} ${r.trace.join('\n')}`);
  t.deepEqual(r.exit, { code: 0, signal: null });
  const lines = r.out.trim().split('\n');
  t.is(lines[0], 'hello');
  t.is(lines[1], 'pid=1');
  t.is(lines[2], 'nook-test');
  t.is(lines[3], 'nook-test');
  t.regex(lines[4]!, /^sh\0-c\0/);
  // the container sees its own root only
  t.deepEqual(lines.slice(5, 11).sort(), ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp']);
  t.regex(r.out, / \/proc\/sys ro,/); // readonly op
  t.regex(r.out, /^5$/m); // /, /proc, /dev, /dev/null, /proc/sys: nothing of the host
  t.is(readFileSync(join(dirs.upper, 'newfile'), 'utf8'), 'written\n');
  t.false(existsSync(join(dirs.lower, 'newfile')));
  t.true(r.trace.some((line) => line.startsWith('mount overlay on ')));
  t.true(r.trace.some((line) => line.startsWith('pivot_root ')));
  t.true(r.trace.includes('execve /bin/sh'));
});

test('fuse-overlayfs started by spawn-mount serves the root, and is gone afterwards', async (t) => {
  const mapping = await fullMapping(t);
  const fuseOverlayfs = findProgram('fuse-overlayfs');
  if (!fuseOverlayfs) return t.fail('fuse-overlayfs is not installed (apt-get install fuse-overlayfs)');
  const dirs = overlayDirs(t);
  const run = await runToEnd(
    plan(mapping, ['sh', '-c', 'echo via-fuse > /tmp/f; cat /tmp/f; grep " / " /proc/self/mountinfo'], {
      outerOps: [
        privateRoot,
        { op: 'spawn-mount', args: [fuseOverlayfs, '-f', '-o', `lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work}`, dirs.merged], target: dirs.merged },
      ],
      innerOps: containerOps(dirs.merged),
    }),
  );
  t.is(run.error, undefined, `${run.err} ${run.trace.join('\n')}`);
  t.deepEqual(run.exit, { code: 0, signal: null });
  t.regex(run.out, /^via-fuse$/m);
  t.regex(run.out, /fuse-overlayfs/);
  t.is(readFileSync(join(dirs.upper, 'tmp/f'), 'utf8'), 'via-fuse\n');
  const daemon = /\(pid (\d+)\)$/.exec(run.trace.find((line) => line.includes('mounted after')) ?? '');
  t.truthy(daemon, run.trace.join('\n'));
  await eventually(() => processGone(Number(daemon![1])), 'fuse-overlayfs to exit');
});

test('a failing mount reports the step and errno, exits 125, and leaves no daemon behind', async (t) => {
  const mapping = await fullMapping(t);
  const dirs = overlayDirs(t);
  const r = await runToEnd(
    plan(mapping, ['true'], {
      outerOps: [
        privateRoot,
        { op: 'spawn-mount', args: [findProgram('fuse-overlayfs') ?? 'fuse-overlayfs', '-f', '-o', `lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work}`, dirs.merged], target: dirs.merged },
        // sysfs needs a network namespace owned by this user namespace: EPERM
        { op: 'mount', source: 'sysfs', target: join(dirs.merged, 'sys'), fstype: 'sysfs', flags: 0, data: '', inRoot: false, ensure: 'none' },
      ],
    }),
  );
  t.true(r.error instanceof ExecutorError);
  const error = r.error as ExecutorError;
  t.is(error.step, `mount sysfs on ${join(dirs.merged, 'sys')}`);
  t.is(error.errno, 'EPERM');
  t.is(error.exitCode, 125);
  t.is(error.message, `mount sysfs on ${join(dirs.merged, 'sys')}: operation not permitted`);
  t.is(r.monitor.code, 125);
  await t.throwsAsync(r.handle.exit, { instanceOf: ExecutorError });
  const daemon = /\(pid (\d+)\)$/.exec(r.trace.find((line) => line.includes('mounted after')) ?? '');
  t.truthy(daemon, r.trace.join('\n'));
  t.true(processGone(Number(daemon![1])), 'the fuse-overlayfs daemon was killed');
});

test('a refused id map fails the start in one line naming the helper, with both helpers waited for', async (t) => {
  const mapping = await fullMapping(t);
  // Subordinate uids the user was never given: newuidmap refuses them (newgidmap, run at the same time, succeeds).
  const outside = mapping.uidMap.reduce((end, e) => Math.max(end, e.outside + e.count), 0) + 1_000_000;
  const user = { ...newUserNamespacePlan(mapping), uidMap: [...mapping.uidMap.slice(0, 1), { inside: 1, outside, count: 10 }] };
  const r = await runToEnd(plan(mapping, ['true'], { user }));
  t.true(r.error instanceof ExecutorError);
  const error = r.error as ExecutorError;
  t.is(error.step, 'write uid_map with newuidmap');
  t.regex(error.message, /^write uid_map with newuidmap: \S*newuidmap exited with status 1/);
  t.is(r.monitor.code, 125);
});

test('a failing mount inside the container process is reported the same way', async (t) => {
  const mapping = await fullMapping(t);
  const dirs = overlayDirs(t);
  const r = await runToEnd(
    plan(mapping, ['true'], {
      outerOps: [privateRoot],
      innerOps: [
        { op: 'set-root', path: dirs.lower },
        { op: 'mount', source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: 0, data: '', inRoot: true, ensure: 'dir' },
      ],
    }),
  );
  const error = r.error as ExecutorError;
  t.true(error instanceof ExecutorError);
  t.is(error.message, 'mount sysfs on /sys: operation not permitted');
  t.is(r.monitor.code, 125);
});

test('a missing command exits 127, one that cannot be run 126', async (t) => {
  const mapping = await fullMapping(t);
  const missing = await runToEnd(plan(mapping, ['no-such-command-anywhere']));
  t.true(missing.error instanceof ExecutorError);
  t.is((missing.error as ExecutorError).exitCode, 127);
  t.regex((missing.error as ExecutorError).message, /executable file "no-such-command-anywhere" not found in \$PATH/);
  t.is(missing.monitor.code, 127);

  const absolute = await runToEnd(plan(mapping, ['/no/such/file']));
  t.is((absolute.error as ExecutorError).exitCode, 127);
  t.is(absolute.monitor.code, 127);

  const dir = tempDir(t, 'noexec');
  writeFileSync(join(dir, 'data'), 'not a program\n', { mode: 0o644 });
  const notExecutable = await runToEnd(plan(mapping, [join(dir, 'data')], { process: processPlan([join(dir, 'data')], { capabilities: { bounding: '0', effective: '0', permitted: '0', inheritable: '0', ambient: '0' } }) }));
  t.is((notExecutable.error as ExecutorError).exitCode, 126);
  t.is((notExecutable.error as ExecutorError).errno, 'EACCES');
  t.is(notExecutable.monitor.code, 126);
});

test('a container killed by SIGKILL exits 137', async (t) => {
  const mapping = await fullMapping(t);
  const run = start(plan(mapping, ['sleep', '30']));
  const { pid } = await run.handle.started;
  process.kill(pid, 'SIGKILL');
  t.deepEqual(await run.handle.exit, { code: 137, signal: 9 });
  t.is((await run.handle.monitorExit).code, 137);
});

test('signals sent to the monitor reach the container', async (t) => {
  const mapping = await fullMapping(t);
  const run = start(plan(mapping, ['sh', '-c', 'trap "echo got-term; exit 5" TERM; echo ready; while true; do sleep 0.05; done']));
  await run.handle.started;
  await eventually(() => run.stdout().includes('ready'), 'the container to be ready');
  run.handle.kill('SIGTERM');
  t.deepEqual(await run.handle.exit, { code: 5, signal: null });
  t.regex(run.stdout(), /got-term/);
});

test('a single mapping is written directly, with setgroups denied', async (t) => {
  const uid = process.getuid!();
  const gid = process.getgid!();
  const single: ExecutorPlan['user'] = {
    mode: 'new',
    uidMap: [{ inside: 0, outside: uid, count: 1 }],
    gidMap: [{ inside: 0, outside: gid, count: 1 }],
    uidHelper: null,
    gidHelper: null,
    setgroups: 'deny',
  };
  const r = await runToEnd({ ...plan(await fullMapping(t), ['sh', '-c', 'cat /proc/self/setgroups /proc/self/uid_map /proc/self/gid_map']), user: single });
  t.is(r.error, undefined, r.err);
  t.regex(r.out, /^deny$/m);
  t.regex(r.out, new RegExp(`^\\s*0\\s+${uid}\\s+1\\n\\s*0\\s+${gid}\\s+1$`, 'm'));
  t.true(r.trace.includes(`uid_map: 0 ${uid} 1`));
});

test('capabilities, no_new_privs and a seccomp filter are applied before execve', async (t) => {
  const mapping = await fullMapping(t);
  // seccomp: ERRNO(EPERM) for mkdir (x86-64) / mkdirat (arm64), everything else allowed
  const nr = process.arch === 'x64' ? 83 : process.arch === 'arm64' ? 34 : null;
  if (nr === null) return t.fail(`no syscall number known for mkdir on ${process.arch}`);
  const insn = (code: number, jt: number, jf: number, k: number) => {
    const b = Buffer.alloc(8);
    b.writeUInt16LE(code, 0);
    b.writeUInt8(jt, 2);
    b.writeUInt8(jf, 3);
    b.writeUInt32LE(k >>> 0, 4);
    return b.toString('hex');
  };
  const filter = insn(0x20, 0, 0, 0) + insn(0x15, 0, 1, nr) + insn(0x06, 0, 0, 0x00050001) + insn(0x06, 0, 0, 0x7fff0000);
  const netBind = 1n << 10n;
  const chown = 1n << 0n;
  const r = await runToEnd(
    plan(mapping, [], {
      process: processPlan([], {
        args: ['sh', '-c', 'grep -E "^(Cap|NoNewPrivs|Seccomp:)" /proc/self/status; id -u; id -g; mkdir /tmp/denied-$$ 2>&1 || echo mkdir-failed'],
        uid: 1000,
        gid: 1000,
        capabilities: { bounding: String(netBind | chown), effective: String(netBind), permitted: String(netBind), inheritable: String(netBind), ambient: String(netBind) },
        seccompFilter: filter,
        noNewPrivileges: true,
      }),
    }),
  );
  t.is(r.error, undefined, r.err);
  t.regex(r.out, /^CapBnd:\s+0000000000000401$/m);
  t.regex(r.out, /^CapEff:\s+0000000000000400$/m);
  t.regex(r.out, /^CapAmb:\s+0000000000000400$/m);
  t.regex(r.out, /^NoNewPrivs:\s+1$/m);
  t.regex(r.out, /^Seccomp:\s+2$/m);
  t.regex(r.out, /^1000\n1000$/m);
  t.regex(r.out, /Operation not permitted/);
  t.regex(r.out, /mkdir-failed/);
  t.true(r.trace.includes('seccomp: 4 instructions'));
});

test('hold: the container waits before execve until released', async (t) => {
  const mapping = await fullMapping(t);
  const run = start({ ...plan(mapping, ['sh', '-c', 'echo released']), hold: true });
  const created = await run.handle.created;
  // still the executor, not yet sh
  const cmdline = readFileSync(`/proc/${created.pid}/cmdline`, 'utf8');
  t.regex(cmdline, /nook-exec/);
  t.is(run.stdout(), '');
  run.handle.release();
  const started = await run.handle.started;
  t.is(started.pid, created.pid);
  t.deepEqual(await run.handle.exit, { code: 0, signal: null });
  await run.drained;
  t.is(run.stdout(), 'released\n');
});

test('detached: logs in k8s-file format, pid file, exit file, then onExit', async (t) => {
  const mapping = await fullMapping(t);
  const dir = tempDir(t, 'detached');
  const files = { log: join(dir, 'ctr.log'), exit: join(dir, 'exit'), pid: join(dir, 'pid'), cleanup: join(dir, 'cleaned-up') };
  const run = start(
    plan(mapping, ['sh', '-c', 'echo out-line; echo err-line >&2; printf partial; sleep 0.2; echo " rest"; exit 3'], {
      monitor: { mode: 'detached', dieWithParent: false, logPath: files.log, exitFile: files.exit, pidFile: files.pid, onExit: ['/bin/sh', '-c', `echo done > ${files.cleanup}`] },
    }),
  );
  const started = await run.handle.started;
  t.is(readFileSync(files.pid, 'utf8'), String(started.pid));
  await eventually(() => existsSync(files.cleanup), 'onExit to run');
  t.is(readFileSync(files.exit, 'utf8'), '3');
  const log = readFileSync(files.log, 'utf8');
  const stamp = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}\\+00:00';
  t.regex(log, new RegExp(`^${stamp} stdout F out-line$`, 'm'));
  t.regex(log, new RegExp(`^${stamp} stderr F err-line$`, 'm'));
  // a line not finished yet is a partial record, completed by the next full one (other lines may come between)
  t.regex(log, new RegExp(`^${stamp} stdout P partial\\n(.*\\n)?${stamp} stdout F  rest$`, 'm'));
  t.is(statSync(files.log).mode & 0o777, 0o600);
  await eventually(() => processGone(started.monitorPid), 'the monitor to exit');
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const netNamespace = { namespaces: [{ type: 'mnt' as const }, { type: 'pid' as const }, { type: 'uts' as const }, { type: 'net' as const }], outerOps: [{ op: 'loopback-up' as const }] };

test('port forwards: the setup process relays a host port into the container\'s network namespace (no slirp4netns)', async (t) => {
  const mapping = await fullMapping(t);
  const port = await freePort();
  // nc serves one connection with cat: an echo, on the container's own loopback
  const run = start(
    plan(mapping, ['busybox', 'nc', '-l', '-p', '7000', '-e', 'cat'], {
      ...netNamespace,
      portForwards: [{ hostIp: '127.0.0.1', hostPort: port, containerIp: '127.0.0.1', containerPort: 7000 }],
    }),
  );
  await run.handle.started;
  t.true(run.trace.includes(`publish tcp 127.0.0.1:${port} -> 127.0.0.1:7000: listening on the host (fd ${/\(fd (\d+)\)/.exec(run.trace.join('\n'))?.[1]})`), run.trace.join('\n'));
  t.true(run.trace.some((line) => line.startsWith('forward 1 published tcp port with splice()')));
  const data = Buffer.alloc(3 << 20, 'nook');
  let echoed: Buffer = Buffer.alloc(0);
  // until nc listens, a client is accepted and closed at once (connection refused inside)
  for (let i = 0; i < 50 && echoed.length === 0; i++) {
    echoed = await exchange(port, data);
    if (echoed.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.true(echoed.equals(data), `echoed ${echoed.length} of ${data.length} bytes`);
  t.deepEqual(await run.handle.exit, { code: 0, signal: null });
  await run.handle.monitorExit;
  // the listener went with the setup process
  const again = createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(port, '127.0.0.1', resolve);
  });
  await new Promise<void>((resolve) => again.close(() => resolve()));
});

test('port forwards: a port taken on the host fails the start in one line, before any namespace exists', async (t) => {
  const mapping = await fullMapping(t);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const r = await runToEnd(plan(mapping, ['true'], { ...netNamespace, portForwards: [{ hostIp: '127.0.0.1', hostPort: port, containerIp: '10.0.2.100', containerPort: 80 }] }));
  const error = r.error as ExecutorError;
  t.true(error instanceof ExecutorError);
  t.is(error.message, `cannot publish 127.0.0.1:${port}/tcp: the port is already in use on the host`);
  t.is(error.errno, 'EADDRINUSE');
  t.is(error.exitCode, 125);
  t.is(r.monitor.code, 125);
  t.false(r.trace.some((line) => line.startsWith('unshare')), r.trace.join('\n'));
});

test('runInUserNamespace chowns to subordinate ids and can delete what it made', async (t) => {
  const mapping = await fullMapping(t);
  const dir = tempDir(t, 'chown');
  const sub = join(dir, 'owned');
  await runInUserNamespace(['sh', '-c', `mkdir ${sub} && echo x > ${sub}/file && chown -R 1000:1000 ${sub} && chmod 755 ${sub}`], { mapping });
  const st = statSync(join(sub, 'file'));
  t.is<number | null, number | null>(st.uid, hostIdFor(mapping.uidMap, 1000));
  t.is<number | null, number | null>(st.gid, hostIdFor(mapping.gidMap, 1000));
  t.is(st.uid, subordinateStart(mapping).start + 999);
  // the user cannot delete it on the host...
  t.throws(() => rmSync(sub, { recursive: true }), { code: 'EACCES' });
  // ...but root of the user namespace can
  await removeInUserNamespace(sub, { mapping });
  t.false(existsSync(sub));

  const failed = await runInUserNamespace(['sh', '-c', 'echo oops >&2; exit 4'], { mapping, reject: false });
  t.is(failed.code, 4);
  t.is(failed.stderr, 'oops\n');
  await t.throwsAsync(runInUserNamespace(['sh', '-c', 'echo last words >&2; exit 2'], { mapping }), { message: /exited with status 2: last words$/ });
});

test('spawning the executor is quick', async (t) => {
  const mapping = await fullMapping(t);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const run = start({ ...plan(mapping, ['true']), trace: false, namespaces: [] });
    await run.handle.started;
    times.push(performance.now() - t0);
    await run.handle.exit;
  }
  t.log(`startExecutor -> started (user namespace, newuidmap/newgidmap): ${times.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  t.true(Math.min(...times) < 500);
});

test('a spawn-mount daemon that exits early is an error with its stderr', async (t) => {
  const mapping = await fullMapping(t);
  const dir = tempDir(t, 'spawn');
  writeFileSync(join(dir, 'marker'), '');
  const r = await runToEnd(
    plan(mapping, ['true'], {
      outerOps: [privateRoot, { op: 'spawn-mount', args: ['/bin/sh', '-c', 'echo "fuse: device not found" >&2; exit 3'], target: dir }],
    }),
  );
  const error = r.error as ExecutorError;
  t.true(error instanceof ExecutorError);
  t.is(error.step, `spawn-mount /bin/sh on ${dir}`);
  t.is(error.message, `spawn-mount /bin/sh on ${dir}: /bin/sh exited with status 3 before mounting: fuse: device not found`);
});

test('nook unshare runs a command as root of the user namespace and passes its exit status on', async (t) => {
  const mapping = await fullMapping(t);
  const cli = join(process.cwd(), 'dist/src/cli/main.cjs');
  const { spawnSync } = await import('node:child_process');
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const shown = run(['unshare', 'sh', '-c', 'cat /proc/self/uid_map; id -u; echo "$NOOK_UNSHARE"']);
  t.is(shown.status, 0, shown.stderr);
  t.regex(shown.stdout, new RegExp(`^\\s*0\\s+${process.getuid!()}\\s+1$`, 'm'));
  t.regex(shown.stdout, new RegExp(`^\\s*1\\s+${subordinateStart(mapping).start}\\s+`, 'm'));
  t.regex(shown.stdout, /^0\n1$/m);
  t.is(run(['unshare', 'sh', '-c', 'exit 7']).status, 7);
  const missing = run(['unshare', 'no-such-command-anywhere']);
  t.is(missing.status, 127);
  t.regex(missing.stderr, /executable file "no-such-command-anywhere" not found in \$PATH/);
  const traced = run(['--trace', 'unshare', 'true']);
  t.regex(traced.stderr, /^trace: unshare\(CLONE_NEWUSER\)$/m);
});
