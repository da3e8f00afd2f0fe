/**
 * Resource limits on the machine the suite runs on, whichever cgroup setup it
 * has: with a cgroup manager the limit holds and the container sees it; with
 * none (cgroup v1, as on the CI machines) a limit is refused, never ignored,
 * and containers without limits still run. The full behaviour on a real
 * systemd with cgroup v2 is tested in a VM (test/vm, npm run test:vm).
 */
import test from 'ava';
import { busyboxRootfsTar } from '../helpers/fixtures.js';
import { describe, runNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';

const image = 'localhost/busybox';
let store: TempStore;

async function nook(args: string[]): Promise<NookResult> {
  return runNook(args, { root: store.root, runroot: store.runroot, env: store.env, timeout: 120_000 });
}

let manager: string;
let reason: string;

test.before(async () => {
  store = await tempStore();
  const imported = await nook(['import', busyboxRootfsTar(), image]);
  if (imported.exitCode !== 0) throw new Error(describe(imported));
  const info = await nook(['info', '--format', 'json']);
  if (info.exitCode !== 0) throw new Error(describe(info));
  ({ manager, reason } = (JSON.parse(info.stdout) as { cgroups: { manager: string; reason: string } }).cgroups);
});

test.after.always(async () => {
  await nook(['rm', '-f', '--all']);
  await store?.cleanup();
});

test('a memory limit holds where there is a cgroup manager, and is refused with the reason where there is none', async (t) => {
  const r = await nook(['run', '--rm', '--network', 'none', '--memory', '32m', image, 'cat', '/sys/fs/cgroup/memory.max']);
  if (manager === 'none') {
    t.is(r.exitCode, 125, describe(r));
    t.regex(r.stderr, /^Error: --memory: resource limits are unavailable \(/);
    t.true(r.stderr.includes(reason), 'the same reason nook info gives');
    t.regex(r.stderr, /fix: /);
  } else {
    t.is(r.exitCode, 0, describe(r));
    t.is(r.stdout.trim(), String(32 * 1024 * 1024));
  }
});

test('without limits a container runs whatever the host offers; stats and update say when there is no cgroup', async (t) => {
  const r = await nook(['run', '-d', '--name', 'plain', '--network', 'none', image, 'sleep', '60']);
  t.is(r.exitCode, 0, describe(r));
  const stats = await nook(['stats', '--no-stream', '--format', 'json', 'plain']);
  const update = await nook(['update', '--pids-limit', '10', 'plain']);
  if (manager === 'none') {
    t.is(stats.exitCode, 125);
    t.regex(stats.stderr, /container plain has no cgroup/);
    t.is(update.exitCode, 125);
    t.regex(update.stderr, /resource limits are unavailable/);
  } else {
    t.is(stats.exitCode, 0, describe(stats));
    t.is((JSON.parse(stats.stdout) as { name: string }[])[0]!.name, 'plain');
    t.is(update.exitCode, 0, describe(update));
  }
  t.is((await nook(['rm', '-f', 'plain'])).exitCode, 0);
});

test('flags are checked before anything is made', async (t) => {
  for (const [args, message] of [
    [['--memory', 'lots'], /invalid --memory "lots"/],
    [['--memory-swap', '1g'], /--memory-swap needs --memory/],
    [['--cpus', '0'], /invalid --cpus/],
    [['--cgroups=disabled', '--pids-limit', '5'], /cannot be combined with --cgroups=disabled/],
    [['--cgroup-manager', 'nonsense'], /Allowed choices are systemd, cgroupfs, none/],
  ] as const) {
    const r = await nook(['create', '--name', 'flagcheck', '--network', 'none', ...args, image, 'true']);
    t.is(r.exitCode, 125, describe(r));
    t.regex(r.stderr, message);
  }
  const list = await nook(['ps', '-a', '--format', 'json']);
  t.false((JSON.parse(list.stdout) as { Names: string[] }[]).some((c) => c.Names.includes('flagcheck')), 'no container was created');
});

test('--cgroups=disabled runs without a cgroup of its own', async (t) => {
  const r = await nook(['run', '--rm', '--network', 'none', '--cgroups=disabled', image, 'echo', 'ran']);
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout, 'ran');
});
