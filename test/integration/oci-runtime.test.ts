/**
 * nook-runtime, nook's OCI runtime command line, for real: an unprivileged
 * user, a bundle made with `nook-runtime spec --rootless` around the busybox
 * root file system, the lifecycle of the runtime spec (create, state, start,
 * kill, delete), runc's run and exec, hooks, runc's error behaviour, and
 * podman driving nook-runtime through conmon (`podman --runtime`).
 */
import test from 'ava';
import { execa, type Options } from 'execa';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OciSpec } from '../../src/runtime/spec.js';
import { busyboxRootfsTar } from '../helpers/fixtures.js';
import { removeTree } from '../helpers/store.js';

const runtimeMain = fileURLToPath(new URL('../../src/cli/runtime-main.cjs', import.meta.url));

let dir: string;
/** --root of nook-runtime */
let stateRoot: string;
/** a busybox root file system shared by the bundles that do not bring their own (read-only in them) */
let sharedRootfs: string;

interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function rt(args: string[], options: Options = {}): Promise<Result> {
  const r = await execa(process.execPath, [runtimeMain, '--root', stateRoot, ...args], { reject: false, timeout: 60_000, ...options });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

const show = (r: Result) => `exit ${r.exitCode}: ${r.stderr.trim()}`;

let outputs = 0;
/**
 * create, run -d, exec -d: the container inherits the runtime's stdout and
 * stderr and keeps them open, so they go to files here (a pipe would not end
 * before the container does).
 */
async function rtLeavingContainer(args: string[]): Promise<Result & { stdoutFile: string }> {
  const n = ++outputs;
  const stdoutFile = join(dir, `out-${n}`);
  const stderrFile = join(dir, `err-${n}`);
  // Descriptors of the files themselves: execa would relay {file} through a socket the container keeps.
  const out = openSync(stdoutFile, 'w');
  const err = openSync(stderrFile, 'w');
  try {
    const child = spawn(process.execPath, [runtimeMain, '--root', stateRoot, ...args], { stdio: ['ignore', out, err], timeout: 60_000 });
    const exitCode = await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    return { exitCode, stdout: readFileSync(stdoutFile, 'utf8'), stderr: readFileSync(stderrFile, 'utf8'), stdoutFile };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

async function extractRootfs(target: string): Promise<void> {
  mkdirSync(target, { recursive: true });
  // A rootless bundle maps only our own uid: a plain extraction as ourselves is right.
  const tar = await execa('tar', ['-xf', busyboxRootfsTar(), '-C', target, '--no-same-owner'], { reject: false });
  if (tar.exitCode !== 0 && !existsSync(join(target, 'bin', 'busybox'))) throw new Error(`tar: ${tar.stderr}`);
}

/** A bundle from `spec --rootless`, edited: by default the shared rootfs and no terminal. */
async function makeBundle(name: string, edit: (spec: OciSpec) => void = () => {}, ownRootfs = false): Promise<string> {
  const bundle = join(dir, name);
  mkdirSync(bundle, { recursive: true });
  const spec = await rt(['spec', '--rootless', '--bundle', bundle]);
  if (spec.exitCode !== 0) throw new Error(`spec --rootless: ${show(spec)}`);
  const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
  if (ownRootfs) await extractRootfs(join(bundle, 'rootfs'));
  else config.root = { path: sharedRootfs, readonly: true };
  config.process!.terminal = false;
  edit(config);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  return bundle;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function stateOf(id: string): Promise<{ ociVersion: string; id: string; status: string; pid: number; bundle: string; annotations: Record<string, string> }> {
  const r = await rt(['state', id]);
  if (r.exitCode !== 0) throw new Error(`state ${id}: ${show(r)}`);
  return JSON.parse(r.stdout) as never;
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nook-oci-'));
  stateRoot = join(dir, 'state');
  sharedRootfs = join(dir, 'rootfs');
  await extractRootfs(sharedRootfs);
});

test.after.always(async () => {
  if (!dir) return;
  const list = await rt(['list', '-q']);
  for (const id of list.stdout.split('\n').filter(Boolean)) await rt(['delete', '--force', id]);
  await removeTree(dir);
});

test('spec --rootless writes runc\'s rootless config.json, and does not overwrite one', async (t) => {
  const bundle = join(dir, 'spec-only');
  mkdirSync(bundle);
  const r = await rt(['spec', '--rootless', '--bundle', bundle]);
  t.is(r.exitCode, 0, show(r));
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
  t.deepEqual(spec.linux!.uidMappings, [{ containerID: 0, hostID: process.getuid!(), size: 1 }]);
  t.deepEqual(spec.linux!.gidMappings, [{ containerID: 0, hostID: process.getgid!(), size: 1 }]);
  const types = spec.linux!.namespaces!.map((ns) => ns.type);
  t.true(types.includes('user') && types.includes('mount') && types.includes('pid'));
  t.false(types.includes('network'));
  t.is(spec.linux!.resources, undefined);
  t.deepEqual(spec.mounts!.find((m) => m.destination === '/sys'), { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  t.false(JSON.stringify(spec.mounts).includes('gid='));
  t.is(spec.root!.path, 'rootfs');
  t.true(spec.process!.terminal);

  const again = await rt(['spec', '--rootless', '--bundle', bundle]);
  t.is(again.exitCode, 1);
  t.regex(again.stderr, /config\.json exists/);
});

test('features lists what nook-runtime supports', async (t) => {
  const r = await rt(['features']);
  t.is(r.exitCode, 0, show(r));
  const features = JSON.parse(r.stdout) as { hooks: string[]; linux: { namespaces: string[]; seccomp: { enabled: boolean } } };
  t.deepEqual(features.hooks, ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
  t.true(features.linux.namespaces.includes('user'));
  t.true(features.linux.seccomp.enabled);
});

test('create, state, start, kill, delete: the runtime spec\'s lifecycle, by an unprivileged user', async (t) => {
  const bundle = await makeBundle('lifecycle', (spec) => {
    spec.process!.args = ['sh', '-c', 'echo hello from the container; exec sleep 300'];
    spec.annotations = { 'org.example.test': 'lifecycle' };
  }, true);
  const pidFile = join(dir, 'lifecycle.pid');
  // Relative root.path ("rootfs", as spec writes it) is relative to the bundle; stdio is create's own.
  const create = await rtLeavingContainer(['create', '--bundle', bundle, '--pid-file', pidFile, 'lc']);
  const output = create.stdoutFile;
  t.is(create.exitCode, 0, show(create));

  const created = await stateOf('lc');
  t.is(created.status, 'created');
  t.is(created.id, 'lc');
  t.is(created.bundle, bundle);
  t.is(typeof created.ociVersion, 'string');
  t.deepEqual(created.annotations, { 'org.example.test': 'lifecycle' });
  t.true(created.pid > 0);
  t.is(Number(readFileSync(pidFile, 'utf8')), created.pid);
  // Held before the user's program: the process exists, the program has not run.
  t.true(existsSync(`/proc/${created.pid}`));
  t.false(readFileSync(`/proc/${created.pid}/cmdline`, 'utf8').includes('sleep'));
  t.is(readFileSync(output, 'utf8'), '');

  const start = await rt(['start', 'lc']);
  t.is(start.exitCode, 0, show(start));
  const running = await stateOf('lc');
  t.is(running.status, 'running');
  t.is(running.pid, created.pid);
  await waitFor('the container\'s output in create\'s stdout', () => readFileSync(output, 'utf8').includes('hello from the container'));
  await waitFor('the program to run', () => readFileSync(`/proc/${created.pid}/cmdline`, 'utf8').startsWith('sleep'));
  // The user namespace maps root in the container to us.
  t.regex(readFileSync(`/proc/${created.pid}/uid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${process.getuid!()}\\s+1\\s*$`));

  const list = JSON.parse((await rt(['list', '--format', 'json'])).stdout) as { id: string; status: string; pid: number }[];
  t.like(list.find((c) => c.id === 'lc'), { status: 'running', pid: created.pid });

  const kill = await rt(['kill', 'lc', 'KILL']);
  t.is(kill.exitCode, 0, show(kill));
  await waitFor('the container to stop', async () => (await stateOf('lc')).status === 'stopped');
  t.is((await stateOf('lc')).pid, 0);
  t.false(existsSync(`/proc/${created.pid}/cmdline`) && readFileSync(`/proc/${created.pid}/cmdline`, 'utf8').startsWith('sleep'));

  const del = await rt(['delete', 'lc']);
  t.is(del.exitCode, 0, show(del));
  const gone = await rt(['state', 'lc']);
  t.is(gone.exitCode, 1);
  t.regex(gone.stderr, /does not exist/);
});

test('run: the container\'s output on our stdio, its exit status ours, its state gone after', async (t) => {
  const bundle = await makeBundle('run', (spec) => {
    spec.process!.args = ['sh', '-c', 'echo out; echo err >&2; test "$(hostname)" = nook && exit 7'];
  });
  const r = await rt(['run', '--bundle', bundle, 'runner']);
  t.is(r.exitCode, 7, show(r));
  t.is(r.stdout.trim(), 'out');
  t.is(r.stderr.trim(), 'err');
  const state = await rt(['state', 'runner']);
  t.is(state.exitCode, 1);
});

test('hooks run at their points, with the state on stdin, in the right namespaces', async (t) => {
  const out = join(dir, 'hook-out');
  mkdirSync(out);
  // Each hook saves its stdin and the uts namespace it runs in.
  const hook = (kind: string, where: string) => ({
    path: '/bin/sh',
    args: ['sh', '-c', `cat > ${where}/${kind}.json; readlink /proc/self/ns/uts > ${where}/${kind}.ns`],
  });
  const bundle = await makeBundle('hooks', (spec) => {
    spec.process!.args = ['sh', '-c', 'readlink /proc/self/ns/uts > /out/container.ns'];
    spec.mounts!.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
    spec.annotations = { 'org.example.hooks': 'yes' };
    spec.hooks = {
      prestart: [hook('prestart', out)],
      createRuntime: [hook('createRuntime', out)],
      // In the container's namespaces before pivot_root: the host's paths still resolve.
      createContainer: [hook('createContainer', out)],
      // In the container's namespaces after pivot_root: the path and /out are the container's.
      startContainer: [hook('startContainer', '/out')],
      poststart: [hook('poststart', out)],
      poststop: [hook('poststop', out)],
    };
  });
  const r = await rt(['run', '--bundle', bundle, 'hooked']);
  t.is(r.exitCode, 0, show(r));

  const read = (kind: string) => JSON.parse(readFileSync(join(out, `${kind}.json`), 'utf8')) as { ociVersion: string; id: string; status: string; pid: number; bundle: string; annotations: Record<string, string> };
  const expectedStatus: Record<string, string> = { prestart: 'creating', createRuntime: 'creating', createContainer: 'creating', startContainer: 'created', poststart: 'running', poststop: 'stopped' };
  const pid = read('prestart').pid;
  t.true(pid > 0);
  for (const [kind, status] of Object.entries(expectedStatus)) {
    const state = read(kind);
    t.is(state.status, status, kind);
    t.is(state.id, 'hooked', kind);
    t.is(state.bundle, bundle, kind);
    t.deepEqual(state.annotations, { 'org.example.hooks': 'yes' }, kind);
    if (kind !== 'poststop') t.is(state.pid, pid, kind);
  }
  const ns = (name: string) => readFileSync(join(out, `${name}.ns`), 'utf8').trim();
  t.not(ns('container'), ns('createRuntime'));
  t.is(ns('createContainer'), ns('container'));
  t.is(ns('startContainer'), ns('container'));
  t.is(ns('prestart'), ns('createRuntime'));
  t.is(ns('poststart'), ns('createRuntime'));
});

test('a failing createRuntime hook fails create, and leaves nothing', async (t) => {
  const bundle = await makeBundle('bad-hook', (spec) => {
    spec.process!.args = ['true'];
    spec.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo refused >&2; exit 3'] }] };
  });
  const r = await rtLeavingContainer(['create', '--bundle', bundle, 'badhook']);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /createRuntime hook \/bin\/sh exited with status 3: refused/);
  t.is((await rt(['state', 'badhook'])).exitCode, 1);
});

test('errors as runc\'s: unknown id, id taken, start twice, delete of a running container, kill of a stopped one', async (t) => {
  const unknown = await rt(['state', 'no-such-container']);
  t.is(unknown.exitCode, 1);
  t.is(unknown.stderr.trim(), 'container no-such-container does not exist');
  t.is((await rt(['delete', 'no-such-container'])).exitCode, 1);
  t.is((await rt(['kill', 'no-such-container'])).exitCode, 1);
  t.is((await rt(['start', 'no-such-container'])).exitCode, 1);
  const badId = await rt(['state', '../etc']);
  t.is(badId.exitCode, 1);
  t.regex(badId.stderr, /invalid container ID format/);

  const bundle = await makeBundle('errors', (spec) => {
    spec.process!.args = ['sleep', '300'];
  });
  t.is((await rtLeavingContainer(['create', '--bundle', bundle, 'twice'])).exitCode, 0);
  const again = await rtLeavingContainer(['create', '--bundle', bundle, 'twice']);
  t.is(again.exitCode, 1);
  t.is(again.stderr.trim(), 'container with given ID already exists');
  t.is((await stateOf('twice')).status, 'created');

  t.is((await rt(['start', 'twice'])).exitCode, 0);
  const startAgain = await rt(['start', 'twice']);
  t.is(startAgain.exitCode, 1);
  t.is(startAgain.stderr.trim(), 'cannot start an already running container');

  const del = await rt(['delete', 'twice']);
  t.is(del.exitCode, 1);
  t.is(del.stderr.trim(), 'cannot delete container twice that is not stopped: running');
  t.is((await stateOf('twice')).status, 'running');

  // SIGTERM to a PID 1 without a handler does nothing (the kernel protects a namespace's init): as with runc.
  t.is((await rt(['kill', 'twice', 'KILL'])).exitCode, 0);
  await waitFor('the container to stop', async () => (await stateOf('twice')).status === 'stopped');
  const killStopped = await rt(['kill', 'twice', 'KILL']);
  t.is(killStopped.exitCode, 1);
  t.is(killStopped.stderr.trim(), 'container not running');
  const startStopped = await rt(['start', 'twice']);
  t.is(startStopped.exitCode, 1);
  t.is(startStopped.stderr.trim(), 'cannot start a container that has stopped');
  t.is((await rt(['delete', 'twice'])).exitCode, 0);

  // delete --force kills a running container; a created one needs no --force.
  t.is((await rtLeavingContainer(['run', '--detach', '--bundle', bundle, 'forced'])).exitCode, 0);
  const pid = (await stateOf('forced')).pid;
  const forced = await rt(['delete', '--force', 'forced']);
  t.is(forced.exitCode, 0, show(forced));
  t.false(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'));
  t.is((await rtLeavingContainer(['create', '--bundle', bundle, 'held'])).exitCode, 0);
  t.is((await rt(['delete', 'held'])).exitCode, 0);
  t.is((await rt(['state', 'held'])).exitCode, 1);
});

test('--log-format json: errors are JSON records in the --log file', async (t) => {
  const log = join(dir, 'runtime.log');
  const r = await rt(['--log', log, '--log-format', 'json', 'state', 'missing-one']);
  t.is(r.exitCode, 1);
  const records = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; time: string });
  t.like(records.at(-1), { level: 'error', msg: 'container missing-one does not exist' });
  t.false(Number.isNaN(Date.parse(records.at(-1)!.time)));
});

test('exec: a new process in the container\'s namespaces, its exit status ours; --process, -d, ps, kill --all', async (t) => {
  const bundle = await makeBundle('exec', (spec) => {
    spec.process!.args = ['sleep', '300'];
    spec.process!.env = ['PATH=/bin:/usr/bin', 'FROM_SPEC=yes'];
  });
  t.is((await rtLeavingContainer(['run', '-d', '--bundle', bundle, 'ex'])).exitCode, 0);
  const init = (await stateOf('ex')).pid;

  const r = await rt(['exec', '--env', 'EXTRA=1', 'ex', 'sh', '-c', 'echo $FROM_SPEC $EXTRA; readlink /proc/1/ns/pid; readlink /proc/self/ns/pid; exit 3']);
  t.is(r.exitCode, 3, show(r));
  const [env, ns1, nsSelf] = r.stdout.split('\n');
  t.is(env, 'yes 1');
  t.is(ns1, nsSelf);

  const processFile = join(dir, 'exec-process.json');
  writeFileSync(processFile, JSON.stringify({ args: ['sh', '-c', 'echo from-process-file $X'], env: ['PATH=/bin', 'X=42'], cwd: '/tmp', user: { uid: 0, gid: 0 } }));
  const viaFile = await rt(['exec', '--process', processFile, 'ex']);
  t.is(viaFile.exitCode, 0, show(viaFile));
  t.is(viaFile.stdout.trim(), 'from-process-file 42');

  const pidFile = join(dir, 'exec.pid');
  const detached = await rtLeavingContainer(['exec', '-d', '--pid-file', pidFile, 'ex', 'sleep', '299']);
  t.is(detached.exitCode, 0, show(detached));
  const execPid = Number(readFileSync(pidFile, 'utf8'));
  t.true(readFileSync(`/proc/${execPid}/cmdline`, 'utf8').startsWith('sleep'));

  const ps = await rt(['ps', '--format', 'json', 'ex']);
  t.is(ps.exitCode, 0, show(ps));
  const pids = JSON.parse(ps.stdout) as number[];
  t.true(pids.includes(init) && pids.includes(execPid), `${ps.stdout} should hold ${init} and ${execPid}`);
  const table = await rt(['ps', 'ex']);
  t.regex(table.stdout, /PID/);
  t.regex(table.stdout, /sleep 299/);

  t.is((await rt(['kill', '--all', 'ex', 'KILL'])).exitCode, 0);
  await waitFor('every process to end', async () => (await stateOf('ex')).status === 'stopped');
  await waitFor('the exec\'d process to end', () => !existsSync(`/proc/${execPid}/cmdline`) || !readFileSync(`/proc/${execPid}/cmdline`, 'utf8').startsWith('sleep'));
  const stopped = await rt(['exec', 'ex', 'true']);
  t.is(stopped.exitCode, 1);
  t.is(stopped.stderr.trim(), 'cannot exec in a stopped container');
  t.is((await rt(['delete', 'ex'])).exitCode, 0);
});

test('podman --runtime nook-runtime: podman run --rm IMAGE echo hi', async (t) => {
  const podmanRoot = join(dir, 'podman');
  const runtimeRoot = join(dir, 'podman-runtime');
  // nook-runtime's state of its own, and a record of how podman and conmon call it. (podman's
  // --runtime-flag would not do for the state: `podman container cleanup`, which deletes, omits it.)
  const calls = join(dir, 'podman-calls.log');
  const wrapper = join(dir, 'nook-runtime-for-podman');
  writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${process.execPath}' '${runtimeMain}' --root '${runtimeRoot}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  const podman = (args: string[]) =>
    execa('podman', ['--root', join(podmanRoot, 'root'), '--runroot', join(podmanRoot, 'run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', wrapper, ...args], { reject: false, timeout: 120_000 });
  const imported = await podman(['import', busyboxRootfsTar(), 'localhost/nook-oci-busybox']);
  t.is(imported.exitCode, 0, imported.stderr);

  const run = await podman(['run', '--rm', 'localhost/nook-oci-busybox', 'echo', 'hi']);
  t.is(run.exitCode, 0, run.stderr);
  t.is(run.stdout, 'hi');
  const verbs = readFileSync(calls, 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ').find((word) => !word.startsWith('-')));
  t.deepEqual(verbs.slice(0, 2), ['create', 'start'], 'podman (through conmon) created and started the container with nook-runtime');

  const status = await podman(['run', '--rm', 'localhost/nook-oci-busybox', 'sh', '-c', 'exit 3']);
  t.is(status.exitCode, 3, status.stderr);

  const detached = await podman(['run', '-d', '--name', 'nook-oci-bg', 'localhost/nook-oci-busybox', 'sleep', '300']);
  t.is(detached.exitCode, 0, detached.stderr);
  const exec = await podman(['exec', 'nook-oci-bg', 'sh', '-c', 'echo exec-ok; exit 4']);
  t.is(exec.exitCode, 4, exec.stderr);
  t.is(exec.stdout, 'exec-ok');
  const rm = await podman(['rm', '-f', '-t', '0', 'nook-oci-bg']);
  t.is(rm.exitCode, 0, rm.stderr);
  const left = await execa(process.execPath, [runtimeMain, '--root', runtimeRoot, 'list', '-q'], { reject: false });
  t.is(left.stdout.trim(), '', 'podman deleted its containers through nook-runtime');
});
