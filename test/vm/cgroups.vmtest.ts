/**
 * Resource limits on a real systemd with cgroup v2, as an unprivileged user
 * in that user's systemd session: run by `npm run test:vm` inside the guest
 * that test/vm/run.sh boots (Debian 12: systemd 252 delegates cpu, memory
 * and pids to users, not cpuset or io). Not part of the host suite: these
 * files are *.vmtest.ts, which the harness does not pick up.
 *
 * Every nook command costs a Node start, about 2 s under software
 * emulation: the tests share one store and one imported image, and each
 * checks several things per container.
 */
import test from 'ava';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { busyboxRootfsTar } from '../helpers/fixtures.js';
import { describe, nookMain, runNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';

const image = 'localhost/busybox';
const slow = 240_000;
let store: TempStore;

async function nook(args: string[]): Promise<NookResult> {
  return runNook(args, { root: store.root, runroot: store.runroot, env: store.env, timeout: slow });
}

async function inspect(name: string): Promise<{ State: { ExitCode: number; OOMKilled: boolean; Status: string }; Id: string }> {
  const r = await nook(['inspect', name]);
  if (r.exitCode !== 0) throw new Error(describe(r));
  return (JSON.parse(r.stdout) as { State: { ExitCode: number; OOMKilled: boolean; Status: string }; Id: string }[])[0]!;
}

/** The scope's cgroup directory, as systemd reports it. */
async function scopeDir(id: string): Promise<string> {
  const r = await execa('systemctl', ['--user', 'show', '--property=ControlGroup', '--value', `nook-${id}.scope`]);
  if (!r.stdout.trim()) throw new Error(`systemd knows no cgroup for nook-${id}.scope`);
  return `/sys/fs/cgroup${r.stdout.trim()}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(async () => {
  store = await tempStore();
  const imported = await nook(['import', busyboxRootfsTar(), image]);
  if (imported.exitCode !== 0) throw new Error(describe(imported));
});

test.after.always(async () => {
  await nook(['rm', '-f', '--all']);
  await store?.cleanup();
});

test('the host: cgroup v2 with the systemd manager, chosen by nook info', async (t) => {
  const r = await nook(['info', '--format', 'json']);
  t.is(r.exitCode, 0, describe(r));
  const info = JSON.parse(r.stdout) as { cgroups: { manager: string; version: string; controllers: string[] } };
  t.is(info.cgroups.version, 'v2');
  t.is(info.cgroups.manager, 'systemd');
  t.true(['cpu', 'memory', 'pids'].every((c) => info.cgroups.controllers.includes(c)), info.cgroups.controllers.join(' '));
});

test('--memory: an allocation past the limit is killed, exit 137, OOMKilled in inspect (foreground)', async (t) => {
  // tail keeps the last lines of an endless line: it allocates until stopped.
  const r = await nook(['run', '--name', 'oom-fg', '--network', 'none', '--memory', '32m', image, 'sh', '-c', 'cat /sys/fs/cgroup/memory.max; exec tail /dev/zero']);
  t.is(r.exitCode, 137, describe(r));
  t.is(r.stdout.trim(), String(32 * 1024 * 1024), 'the container sees its own limit at /sys/fs/cgroup');
  const state = (await inspect('oom-fg')).State;
  t.is(state.ExitCode, 137);
  t.true(state.OOMKilled);
});

test('--memory with -d: exit 137 and OOMKilled through the exit file; the scope is gone afterwards', async (t) => {
  const r = await nook(['run', '-d', '--name', 'oom-d', '--network', 'none', '--memory', '32m', '--memory-swap', '32m', image, 'tail', '/dev/zero']);
  t.is(r.exitCode, 0, describe(r));
  const id = r.stdout.trim();
  const waited = await nook(['wait', 'oom-d']);
  t.is(waited.stdout.trim(), '137', describe(waited));
  const state = (await inspect('oom-d')).State;
  t.is(state.ExitCode, 137);
  t.true(state.OOMKilled);
  const unit = await execa('systemctl', ['--user', 'is-active', `nook-${id}.scope`], { reject: false });
  t.not(unit.stdout.trim(), 'active', 'the scope ends with the container');
});

test('a container that exits normally is not OOMKilled', async (t) => {
  const r = await nook(['run', '--name', 'no-oom', '--network', 'none', '--memory', '64m', image, 'sh', '-c', 'head -c 1000000 /dev/zero | wc -c']);
  t.is(r.exitCode, 0, describe(r));
  t.false((await inspect('no-oom')).State.OOMKilled);
  // A second start makes a new scope under the same name.
  const again = await nook(['start', '--attach', 'no-oom']);
  t.is(again.exitCode, 0, describe(again));
  t.is(again.stdout.trim(), '1000000');
});

test('--pids-limit: fork fails once the limit is reached', async (t) => {
  // The limit counts the executor's setup process too (the container's parent, inside its cgroup).
  // The default network (slirp4netns): the executor holds the container twice, before namespaces and before execve.
  const r = await nook(['run', '--rm', '--pids-limit', '5', image, 'sh', '-c', 'cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6 7 8; do sleep 3 & done; wait']);
  t.regex(r.stdout, /^5$/m);
  t.regex(r.stderr + r.stdout, /can't fork|Resource temporarily unavailable|fork/i, describe(r));
});

test('--cpus throttles (nr_throttled grows), stats shows real numbers, the container has its own cgroup namespace', async (t) => {
  const r = await nook(['run', '-d', '--name', 'busy', '--network', 'none', '--cpus', '0.2', '--memory', '64m', image, 'sh', '-c', 'cat /proc/self/cgroup /sys/fs/cgroup/cpu.max > /tmp/seen; while :; do :; done']);
  t.is(r.exitCode, 0, describe(r));
  const id = r.stdout.trim();
  await sleep(3000);
  const stats = await nook(['stats', '--no-stream', '--format', 'json', 'busy']);
  t.is(stats.exitCode, 0, describe(stats));
  const [entry] = JSON.parse(stats.stdout) as { name: string; cpuPercent: number; cpuThrottledPeriods: number; cpuPeriods: number; memoryUsage: number; memoryLimit: number; pids: number }[];
  t.is(entry!.name, 'busy');
  t.true(entry!.cpuPeriods > 0, JSON.stringify(entry));
  t.true(entry!.cpuThrottledPeriods > 0, `throttled: ${JSON.stringify(entry)}`);
  // 20 % of one CPU; emulation makes the clock coarse: loose bounds.
  t.true(entry!.cpuPercent > 1 && entry!.cpuPercent < 60, `cpu ${entry!.cpuPercent}%`);
  t.true(entry!.memoryUsage > 0);
  t.is(entry!.memoryLimit, 64 * 1024 * 1024);
  t.true(entry!.pids >= 2, 'sh and the setup process');
  const table = await nook(['stats', '--no-stream', 'busy']);
  t.regex(table.stdout, /busy\s+\d+\.\d+%\s+\S+ \/ 64MiB/, table.stdout);

  const dir = await scopeDir(id);
  t.is(readFileSync(`${dir}/cpu.max`, 'utf8').trim(), '20000 100000');
  const seen = await nook(['exec', 'busy', 'cat', '/tmp/seen', '/proc/self/cgroup']);
  t.deepEqual(seen.stdout.split('\n'), ['0::/', '20000 100000', '0::/'], 'its own cgroup namespace, rooted at the scope; exec joins the scope too');

  await nook(['rm', '-f', 'busy']);
  t.false(existsSync(dir), 'the cgroup disappears with the container');
});

test('nook update changes the limits of a running container', async (t) => {
  const r = await nook(['run', '-d', '--name', 'upd', '--network', 'none', '--memory', '64m', '--pids-limit', '50', image, 'sleep', '300']);
  t.is(r.exitCode, 0, describe(r));
  const dir = await scopeDir(r.stdout.trim());
  t.is(readFileSync(`${dir}/memory.max`, 'utf8').trim(), String(64 * 1024 * 1024));
  const u = await nook(['update', '--memory', '128m', '--pids-limit', '20', '--cpus', '0.5', 'upd']);
  t.is(u.exitCode, 0, describe(u));
  t.is(readFileSync(`${dir}/memory.max`, 'utf8').trim(), String(128 * 1024 * 1024));
  t.is(readFileSync(`${dir}/pids.max`, 'utf8').trim(), '20');
  t.is(readFileSync(`${dir}/cpu.max`, 'utf8').trim(), '50000 100000');
  const config = (await inspect('upd')) as unknown as { Config: { linux: { resources: { memory: { limit: number } } } } };
  t.is(config.Config.linux.resources.memory.limit, 128 * 1024 * 1024, 'kept for the next start');
  await nook(['rm', '-f', 'upd']);
});

test('a limit whose controller is not delegated is an error naming it and the fix', async (t) => {
  const r = await nook(['run', '--rm', '--network', 'none', '--cpuset-cpus', '0', image, 'true']);
  t.is(r.exitCode, 125, describe(r));
  t.regex(r.stderr, /--cpuset-cpus needs the cpuset cgroup controller/);
  t.regex(r.stderr, /Delegate=cpu cpuset io memory pids/);
});

test('the cgroupfs manager in a delegated scope of our own: limits hold without systemd making the cgroup', async (t) => {
  // A fresh scope, as a CI container or a service with Delegate=yes gives: nook moves itself into nook-init there.
  const r = await execa(
    'systemd-run',
    ['--user', '--scope', '--quiet', '-p', 'Delegate=yes', process.execPath, nookMain, '--root', store.root, '--runroot', store.runroot, '--cgroup-manager', 'cgroupfs',
      'run', '--rm', '--network', 'none', '--memory', '32m', image, 'sh', '-c', 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max; exec tail /dev/zero'],
    { reject: false, env: store.env, timeout: slow },
  );
  t.is(r.exitCode, 137, `${r.stderr}`);
  t.deepEqual(r.stdout.split('\n'), ['0::/', String(32 * 1024 * 1024)]);
});

test('with --cgroups=disabled the container runs without a cgroup of its own', async (t) => {
  const r = await nook(['run', '--rm', '--network', 'none', '--cgroups=disabled', image, 'cat', '/proc/self/cgroup']);
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout.trim(), '0::/', 'a cgroup namespace, rooted wherever nook was');
  const refused = await nook(['run', '--rm', '--network', 'none', '--cgroups=disabled', '--memory', '32m', image, 'true']);
  t.is(refused.exitCode, 125);
  t.regex(refused.stderr, /cannot be combined with --cgroups=disabled/);
});
