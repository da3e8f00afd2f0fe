/**
 * nook run and the container lifecycle, for real: an unprivileged user, real
 * namespaces, newuidmap, the kernel overlay (and fuse-overlayfs), slirp4netns.
 */
import test from 'ava';
import { execa } from 'execa';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import tty from 'node:tty';
import { linuxSyscalls } from '../../src/syscalls/syscalls.js';
import { busyboxRootfsTar } from '../helpers/fixtures.js';
import { describe, nookMain, runNook, spawnNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';

let store: TempStore;
const image = 'localhost/busybox';
const nook = (args: string[], input?: string): Promise<NookResult> =>
  runNook(args, { root: store.root, runroot: store.runroot, env: store.env, ...(input !== undefined ? { input } : {}) });

function subordinateStart(kind: 'uid' | 'gid'): number {
  const name = process.env.USER ?? process.env.LOGNAME ?? '';
  const uid = String(process.getuid!());
  const line = readFileSync(`/etc/sub${kind}`, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`) || l.startsWith(`${uid}:`));
  if (!line) throw new Error(`no /etc/sub${kind} entry for ${name}: the harness must create one`);
  return Number(line.split(':')[1]);
}

/** Processes of this user whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<string[]> {
  const ps = await execa('ps', ['-u', String(process.getuid!()), '-o', 'pid=,args='], { reject: false });
  return ps.stdout.split('\n').filter((l) => l.includes(needle));
}

test.before(async () => {
  store = await tempStore();
  const imported = await nook(['import', busyboxRootfsTar(), image]);
  if (imported.exitCode !== 0) throw new Error(describe(imported));
});

test.after.always(async () => {
  await nook(['rm', '-af']);
  await store?.cleanup();
});

test('run echoes and exits 0', async (t) => {
  const r = await nook(['run', '--rm', image, 'echo', 'hello']);
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout, 'hello');
});

test('the user namespace maps root to the user and 1..65536 to the subordinate range', async (t) => {
  const r = await nook(['run', '--rm', image, 'cat', '/proc/self/uid_map', '/proc/self/gid_map']);
  t.is(r.exitCode, 0, describe(r));
  const rows = r.stdout.split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  t.deepEqual(rows, [
    [0, process.getuid!(), 1],
    [1, subordinateStart('uid'), 65536],
    [0, process.getgid!(), 1],
    [1, subordinateStart('gid'), 65536],
  ]);
});

test('the id maps seen from outside match, and the command is PID 1 with its own hostname', async (t) => {
  const run = await nook(['run', '-d', '--name', 'outside-view', '--hostname', 'boxy', image, 'sleep', '60']);
  t.is(run.exitCode, 0, describe(run));
  const inspect = JSON.parse((await nook(['inspect', 'outside-view'])).stdout) as { State: { Pid: number } }[];
  const pid = inspect[0]!.State.Pid;
  t.true(pid > 0);
  t.regex(readFileSync(`/proc/${pid}/uid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${process.getuid!()}\\s+1\\n\\s*1\\s+${subordinateStart('uid')}\\s+65536`));
  const inside = await nook(['exec', 'outside-view', 'sh', '-c', 'hostname; cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']);
  t.is(inside.exitCode, 0, describe(inside));
  const [hostname, cmdline] = inside.stdout.split('\n');
  t.is(hostname, 'boxy');
  t.is(cmdline!.trim(), 'sleep 60');
  await nook(['rm', '-f', 'outside-view']);
});

test('image file ownership inside equals the image\'s', async (t) => {
  const r = await nook(['run', '--rm', image, 'stat', '-c', '%u:%g %n', '/home/tester/owned', '/bin/busybox']);
  t.is(r.exitCode, 0, describe(r));
  t.deepEqual(r.stdout.split('\n'), ['1000:1000 /home/tester/owned', '0:0 /bin/busybox']);
});

test('the default hostname is the short id; PID 1 is the command', async (t) => {
  const r = await nook(['run', '--name', 'short-id', image, 'sh', '-c', 'hostname; echo $$']);
  t.is(r.exitCode, 0, describe(r));
  const id = JSON.parse((await nook(['inspect', 'short-id'])).stdout)[0].Id as string;
  t.deepEqual(r.stdout.split('\n'), [id.slice(0, 12), '1']);
  await nook(['rm', 'short-id']);
});

test('masked /proc paths read empty and read-only ones cannot be written', async (t) => {
  const masked = ['/proc/timer_list', '/proc/sched_debug', '/proc/keys'].find((p) => existsSync(p));
  t.truthy(masked, 'the host has none of the masked files to compare with');
  const r = await nook(['run', '--rm', image, 'sh', '-c', `wc -c < ${masked}; echo 1 > /proc/sys/kernel/domainname && echo written`]);
  t.is(r.stdout, '0', describe(r));
  t.regex(r.stderr, /Read-only file system/);
});

test('a dropped capability is gone: chown fails after --cap-drop CHOWN', async (t) => {
  const allowed = await nook(['run', '--rm', image, 'chown', '1000:1000', '/tmp']);
  t.is(allowed.exitCode, 0, describe(allowed));
  const dropped = await nook(['run', '--rm', '--cap-drop', 'CHOWN', image, 'chown', '1000:1000', '/tmp']);
  t.is(dropped.exitCode, 1);
  t.regex(dropped.stderr, /Operation not permitted/);
  const status = await nook(['run', '--rm', '--cap-drop', 'ALL', image, 'grep', 'CapEff', '/proc/self/status']);
  t.regex(status.stdout, /CapEff:\s+0+$/);
});

test('a system call on the seccomp deny-list fails with EPERM, and unconfined lifts it', async (t) => {
  const denied = await nook(['run', '--rm', image, 'unshare', '-U', 'true']);
  t.not(denied.exitCode, 0);
  t.regex(denied.stderr, /Operation not permitted/);
  const unconfined = await nook(['run', '--rm', '--security-opt', 'seccomp=unconfined', image, 'unshare', '-U', 'true']);
  t.is(unconfined.exitCode, 0, describe(unconfined));
});

test('volumes: rw writes reach the host, ro refuses; a missing host path is an error', async (t) => {
  const dir = join(store.dir, 'vol');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'in.txt'), 'from host\n');
  const rw = await nook(['run', '--rm', '-v', `${dir}:/data`, image, 'sh', '-c', 'cat /data/in.txt; echo from container > /data/out.txt']);
  t.is(rw.exitCode, 0, describe(rw));
  t.is(rw.stdout, 'from host');
  t.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'from container\n');
  const ro = await nook(['run', '--rm', '-v', `${dir}:/data:ro`, image, 'sh', '-c', 'echo x > /data/nope']);
  t.is(ro.exitCode, 1);
  t.regex(ro.stderr, /Read-only file system/);
  const missing = await nook(['run', '--rm', '-v', `${dir}/absent:/data`, image, 'true']);
  t.is(missing.exitCode, 125);
  t.regex(missing.stderr, /^Error: volume source .*absent does not exist/);
});

test('exit codes: the command\'s own, 126 not executable, 127 not found, 137 killed', async (t) => {
  t.is((await nook(['run', '--rm', image, 'sh', '-c', 'exit 3'])).exitCode, 3);
  const notFound = await nook(['run', '--rm', image, 'no-such-command']);
  t.is(notFound.exitCode, 127);
  t.regex(notFound.stderr, /no-such-command.*not found/);
  const notExecutable = await nook(['run', '--rm', image, '/etc/passwd']);
  t.is(notExecutable.exitCode, 126);
  const killed = await nook(['run', '--rm', image, 'sh', '-c', 'sleep 30 & kill -9 $!; wait $!']);
  t.is(killed.exitCode, 137);
});

test('an unknown flag or image is a one-line error with 125', async (t) => {
  const flag = await nook(['run', '--no-such-flag', image, 'true']);
  t.is(flag.exitCode, 125);
  const missing = await nook(['run', '--rm', 'localhost/absent-image', 'true']);
  t.is(missing.exitCode, 125);
  t.is(missing.stderr.split('\n').length, 1, missing.stderr);
});

test('detached: logs, ps, stop, wait and rm', async (t) => {
  const run = await nook(['run', '-d', '--name', 'ticker', image, 'sh', '-c', 'trap "echo bye; exit 7" TERM; echo started; while true; do sleep 0.1; done']);
  t.is(run.exitCode, 0, describe(run));
  t.regex(run.stdout, /^[0-9a-f]{64}$/);
  let logs = '';
  for (let i = 0; i < 50 && !logs.includes('started'); i++) {
    logs = (await nook(['logs', 'ticker'])).stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(logs, 'started');
  const ps = JSON.parse((await nook(['ps', '--format', 'json'])).stdout) as { Names: string[]; State: string }[];
  t.true(ps.some((c) => c.Names[0] === 'ticker' && c.State === 'running'));
  const stop = await nook(['stop', '-t', '5', 'ticker']);
  t.is(stop.exitCode, 0, describe(stop));
  t.is((await nook(['wait', 'ticker'])).stdout, '7');
  t.is((await nook(['logs', 'ticker'])).stdout, 'started\nbye');
  const rm = await nook(['rm', 'ticker']);
  t.is(rm.exitCode, 0, describe(rm));
  t.is((await nook(['ps', '-a', '--format', 'json'])).stdout.includes('"ticker"'), false);
});

test('exec joins the running container: same namespaces, env, exit code', async (t) => {
  await nook(['run', '-d', '--name', 'exec-target', '-e', 'FOO=bar', image, 'sleep', '60']);
  const r = await nook(['exec', '-e', 'EXTRA=1', 'exec-target', 'sh', '-c', 'echo $FOO $EXTRA; readlink /proc/1/ns/pid; readlink /proc/self/ns/pid; exit 4']);
  t.is(r.exitCode, 4);
  const [env, ns1, nsSelf] = r.stdout.split('\n');
  t.is(env, 'bar 1');
  t.is(ns1, nsSelf);
  const input = await nook(['exec', '-i', 'exec-target', 'cat'], 'piped in');
  t.is(input.stdout, 'piped in');
  await nook(['rm', '-f', 'exec-target']);
  const gone = await nook(['exec', 'exec-target', 'true']);
  t.is(gone.exitCode, 125);
  t.regex(gone.stderr, /no such container/);
});

test('run -t gives the container a terminal with the caller\'s size', async (t) => {
  const script = await execa('script', ['-qec', `stty cols 91 rows 27; ${process.execPath} ${join(process.cwd(), 'dist/src/cli/main.cjs')} --root ${store.root} --runroot ${store.runroot} run -t --rm ${image} sh -c 'test -t 0 && test -t 1 && tty && stty size && ls /dev/pts'`, '/dev/null'], { reject: false, env: store.env });
  t.is(script.exitCode, 0, script.stderr);
  t.regex(script.stdout, /27 91/);
  // The container's own devpts: the terminal's name exists inside.
  const name = /^(\/dev\/pts\/(\d+))\r*$/m.exec(script.stdout);
  t.truthy(name, script.stdout);
  const lines = script.stdout.split('\n');
  const listing = lines.slice(lines.findIndex((l) => /27 91/.test(l)) + 1).join(' ');
  t.regex(listing, new RegExp(`\\b${name![2]}\\b`), 'ls /dev/pts in the container lists the terminal');
});

/**
 * A terminal driven from here: the pty comes from the syscall door, nook gets
 * its terminal side as stdin/stdout/stderr (as a shell would give it), and the
 * test types on the controlling side and reads what appears.
 */
interface DrivenTerminal {
  slave: number;
  output(): string;
  waitFor(pattern: RegExp, what: string): Promise<void>;
  type(text: string): void;
  /** `stty -g` of the terminal: its settings, to compare before and after. */
  settings(): string;
  close(): void;
}

async function drivenTerminal(size: { rows: number; cols: number }): Promise<DrivenTerminal> {
  const sys = await linuxSyscalls();
  const pty = sys.openpty(size);
  let output = '';
  const reader = new tty.ReadStream(pty.master);
  reader.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  reader.on('error', () => {});
  return {
    slave: pty.slave,
    output: () => output,
    async waitFor(pattern, what) {
      for (let i = 0; i < 200 && !pattern.test(output); i++) await new Promise((r) => setTimeout(r, 50));
      if (!pattern.test(output)) throw new Error(`${what}: ${JSON.stringify(output)} never matched ${pattern}`);
    },
    type(text) {
      writeSync(pty.master, text);
    },
    settings() {
      const stty = spawnSync('stty', ['-g'], { stdio: [pty.slave, 'pipe', 'pipe'], encoding: 'utf8' });
      if (stty.status !== 0) throw new Error(`stty -g: ${stty.stderr}`);
      return stty.stdout.trim();
    },
    close() {
      reader.destroy();
      sys.close(pty.slave);
    },
  };
}

function nookOnTerminal(terminal: DrivenTerminal, args: string[]): Promise<number | null> {
  const child = spawn(process.execPath, [nookMain, '--root', store.root, '--runroot', store.runroot, ...args], {
    stdio: [terminal.slave, terminal.slave, terminal.slave],
    env: { ...process.env, ...store.env },
  });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 9 : null))));
}

test.serial('run -it: the container\'s own terminal, sized, takes what is typed; the user\'s terminal comes back', async (t) => {
  const terminal = await drivenTerminal({ rows: 33, cols: 101 });
  try {
    const before = terminal.settings();
    const exit = nookOnTerminal(terminal, ['run', '-it', '--rm', image, 'sh', '-c', 'tty; stty size; echo ready; read line; echo "got:$line"; exit 7']);
    await terminal.waitFor(/ready/, 'the container never got ready');
    t.regex(terminal.output(), /\/dev\/pts\/\d+\r*\n/);
    t.regex(terminal.output(), /33 101/);
    t.not(terminal.settings(), before, 'the user\'s terminal is raw while the container runs');
    terminal.type('hello there\r');
    await terminal.waitFor(/got:hello there/, 'typed input never reached the container');
    t.is(await exit, 7);
    t.is(terminal.settings(), before);
  } finally {
    terminal.close();
  }
});

test.serial('run -it: the user\'s terminal comes back when the container is killed, and when nook is', async (t) => {
  const terminal = await drivenTerminal({ rows: 24, cols: 80 });
  try {
    const before = terminal.settings();
    const exit = nookOnTerminal(terminal, ['run', '-it', '--rm', '--name', 'tty-killed', image, 'sh', '-c', 'echo ready; sleep 301']);
    await terminal.waitFor(/ready/, 'the container never got ready');
    const kill = await nook(['kill', 'tty-killed']);
    t.is(kill.exitCode, 0, describe(kill));
    t.is(await exit, 137);
    t.is(terminal.settings(), before, 'restored after the container was killed');

    const second = spawn(process.execPath, [nookMain, '--root', store.root, '--runroot', store.runroot, 'run', '-it', '--name', 'tty-orphan', image, 'sh', '-c', 'echo ready2; sleep 302'], {
      stdio: [terminal.slave, terminal.slave, terminal.slave],
      env: { ...process.env, ...store.env },
    });
    await terminal.waitFor(/ready2/, 'the second container never got ready');
    t.not(terminal.settings(), before);
    second.kill('SIGKILL');
    let settings = terminal.settings();
    for (let i = 0; i < 50 && settings !== before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      settings = terminal.settings();
    }
    t.is(settings, before, 'restored after nook was killed with SIGKILL');
    let left = await processesMentioning('sleep 302');
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await processesMentioning('sleep 302');
    }
    t.deepEqual(left, [], 'the container died with nook');
    await nook(['rm', '-f', 'tty-orphan']);
  } finally {
    terminal.close();
  }
});

test.serial('exec -it: a terminal of the container\'s devpts, input reaches the process', async (t) => {
  const run = await nook(['run', '-d', '--name', 'tty-exec', image, 'sleep', '303']);
  t.is(run.exitCode, 0, describe(run));
  const terminal = await drivenTerminal({ rows: 40, cols: 120 });
  try {
    const before = terminal.settings();
    const exit = nookOnTerminal(terminal, ['exec', '-it', 'tty-exec', 'sh', '-c', 'tty; stty size; ls /dev/pts; echo ready; read line; echo "exec got:$line"']);
    await terminal.waitFor(/ready/, 'the exec never got ready');
    const name = /\/dev\/pts\/(\d+)\r*\n/.exec(terminal.output());
    t.truthy(name, terminal.output());
    t.regex(terminal.output(), /40 120/);
    terminal.type('typed\r');
    await terminal.waitFor(/exec got:typed/, 'typed input never reached the exec\'d process');
    t.is(await exit, 0);
    t.is(terminal.settings(), before);
  } finally {
    terminal.close();
    await nook(['rm', '-f', 'tty-exec']);
  }
});

test.serial('run -d -t: the terminal\'s output goes to the log', async (t) => {
  const run = await nook(['run', '-d', '-t', '--name', 'tty-logged', image, 'sh', '-c', 'tty; stty size']);
  t.is(run.exitCode, 0, describe(run));
  const wait = await nook(['wait', 'tty-logged']);
  t.is(wait.exitCode, 0, describe(wait));
  const logs = await nook(['logs', 'tty-logged']);
  t.is(logs.exitCode, 0, describe(logs));
  t.regex(logs.stdout, /^\/dev\/pts\/\d+\r*$/m);
  t.regex(logs.stdout, /^24 80\r*$/m);
  await nook(['rm', '-f', 'tty-logged']);
});

test('--rm leaves no container directory, mount or process', async (t) => {
  const r = await nook(['run', '--rm', '--name', 'ephemeral', image, 'sh', '-c', 'echo data > /tmp/file']);
  t.is(r.exitCode, 0, describe(r));
  // Other tests of this file create and remove containers meanwhile: a record may vanish while we read.
  const recordOf = (id: string): string => {
    try {
      return readFileSync(join(store.root, 'containers', id, 'container.json'), 'utf8');
    } catch {
      return '';
    }
  };
  t.deepEqual(readdirSync(join(store.root, 'containers')).filter((id) => recordOf(id).includes('"ephemeral"')), []);
  t.false(readFileSync('/proc/self/mountinfo', 'utf8').includes(store.root));
  t.deepEqual(await processesMentioning('ephemeral'), []);
});

test('kill -9 of nook during a foreground run leaves nothing after rm -f', async (t) => {
  const child = spawnNook(['run', '--name', 'orphaned', image, 'sleep', '317'], { root: store.root, runroot: store.runroot, env: store.env });
  let pid: number | undefined;
  for (let i = 0; i < 100 && !pid; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const ps = await nook(['ps', '--format', 'json']);
    pid = (JSON.parse(ps.stdout) as { Names: string[]; Pid: number }[]).find((c) => c.Names[0] === 'orphaned')?.Pid;
  }
  t.truthy(pid, 'the container never showed as running');
  child.kill('SIGKILL');
  await child;
  // The container dies with its executor (parent-death signals), and shows as exited.
  for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
  t.false(existsSync(`/proc/${pid}`), 'the container outlived nook -9');
  const rm = await nook(['rm', '-f', 'orphaned']);
  t.is(rm.exitCode, 0, describe(rm));
  // 317: a duration no other test uses, since test files run in parallel
  t.deepEqual(await processesMentioning('sleep 317'), []);
});

test('published ports reach a server in the container', async (t) => {
  const www = join(store.dir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'index.html'), 'served by busybox httpd\n');
  const port = 20000 + (process.pid % 10000);
  const run = await nook(['run', '-d', '--name', 'httpd', '-p', `127.0.0.1:${port}:80`, '-v', `${www}:/www:ro`, image, 'httpd', '-f', '-p', '80', '-h', '/www']);
  t.is(run.exitCode, 0, describe(run));
  let body = '';
  for (let i = 0; i < 50 && !body; i++) {
    body = await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text()).catch(() => '');
    if (!body) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(body, 'served by busybox httpd\n');
  const inspect = JSON.parse((await nook(['inspect', 'httpd'])).stdout) as { NetworkSettings: { state?: { helper?: { pid: number } } } }[];
  const helper = inspect[0]!.NetworkSettings.state?.helper?.pid;
  t.truthy(helper, 'slirp4netns pid not recorded');
  await nook(['rm', '-f', 'httpd']);
  for (let i = 0; i < 20 && existsSync(`/proc/${helper}/cmdline`) && readFileSync(`/proc/${helper}/cmdline`, 'utf8').includes('slirp4netns'); i++) await new Promise((r) => setTimeout(r, 100));
  t.false(existsSync(`/proc/${helper}/cmdline`) && readFileSync(`/proc/${helper}/cmdline`, 'utf8').includes('slirp4netns'), 'slirp4netns outlived its container');
});

test('--network none has only loopback', async (t) => {
  const r = await nook(['run', '--rm', '--network', 'none', image, 'ls', '/sys/class/net']);
  t.is(r.stdout, 'lo', describe(r));
  const up = await nook(['run', '--rm', '--network', 'none', image, 'cat', '/sys/class/net/lo/operstate', '/sys/class/net/lo/flags']);
  t.regex(up.stdout, /0x9$/, describe(up)); // IFF_UP | IFF_LOOPBACK
});

test('--init reaps zombies and forwards signals', async (t) => {
  const r = await nook(['run', '--rm', '--init', image, 'sh', '-c', 'echo $$; exit 9']);
  t.is(r.exitCode, 9, describe(r));
  t.not(r.stdout, '1');
});
