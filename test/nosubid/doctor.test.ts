/**
 * `nook doctor` as a user WITHOUT subordinate ids (the harness runs test/nosubid
 * as nooktest2). The missing range is a warning, not a failure: with a single
 * mapping (the user's own uid as root inside) a container still runs, so
 * doctor exits 0 and says what is lost and the usermod that repairs it.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { describe, runNook } from '../helpers/nook.js';
import { tempStore } from '../helpers/store.js';

interface Check {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  breaks?: string;
  fix?: string;
}

function hasEntry(file: string): boolean {
  const { username, uid } = userInfo();
  return readFileSync(file, 'utf8')
    .split('\n')
    .some((line) => line.startsWith(`${username}:`) || line.startsWith(`${uid}:`));
}

test.before((t) => {
  if (process.getuid?.() === 0) t.fail('run as the test user without subordinate ids (test/harness/run.sh runs test/nosubid as nooktest2)');
  if (hasEntry('/etc/subuid') || hasEntry('/etc/subgid')) t.fail(`${userInfo().username} has subordinate ids: test/nosubid must run as a user without any (the harness's nooktest2)`);
});

test('doctor --json: warns about the missing range with the usermod fix, and exits 0', async (t) => {
  const store = await tempStore(t);
  const user = userInfo().username;
  const result = await runNook(['doctor', '--json'], store);
  t.is(result.exitCode, 0, describe(result));
  const report = JSON.parse(result.stdout) as { ok: boolean; checks: Check[] };
  t.true(report.ok, 'a single mapping still lets a container run');
  const byId = new Map(report.checks.map((c) => [c.id, c]));
  for (const id of ['subuid', 'subgid']) {
    const check = byId.get(id)!;
    t.is(check.status, 'warn');
    t.is(check.detail, `no subordinate ${id.slice(3)}s for ${user} in /etc/sub${id.slice(3)}`);
    t.regex(check.breaks!, /single mapping/);
    t.regex(check.fix!, new RegExp(`^sudo usermod --add-subuids (\\d+)-(\\d+) --add-subgids \\1-\\2 ${user}$`));
    const [, start, end] = /(\d+)-(\d+)/.exec(check.fix!)!;
    t.is(Number(end) - Number(start) + 1, 65536);
  }
  // nothing for newuidmap to map: not a problem of its own
  t.is(byId.get('newuidmap')?.status, 'ok');
});

test('doctor text: the fix line is printed under the warning', async (t) => {
  const store = await tempStore(t);
  const user = userInfo().username;
  const result = await runNook(['doctor'], store);
  t.is(result.exitCode, 0, describe(result));
  t.regex(result.stdout, new RegExp(`^warn subordinate uids: no subordinate uids for ${user} in /etc/subuid\\n {5}breaks: .*single mapping.*\\n {5}fix: {4}sudo usermod --add-subuids \\d+-\\d+ --add-subgids \\d+-\\d+ ${user}$`, 'm'));
  t.regex(result.stdout, /A container can run here \(\d+ warnings?/);
});

test('info: a single mapping, with the reason', async (t) => {
  const store = await tempStore(t);
  const result = await runNook(['info', '--format', 'json'], store);
  t.is(result.exitCode, 0, describe(result));
  const info = JSON.parse(result.stdout) as { rootless: { uid: number; gid: number; uidMap: unknown[]; gidMap: unknown[]; mapping: string } };
  t.deepEqual(info.rootless.uidMap, [{ inside: 0, outside: info.rootless.uid, count: 1 }]);
  t.deepEqual(info.rootless.gidMap, [{ inside: 0, outside: info.rootless.gid, count: 1 }]);
  t.regex(info.rootless.mapping, /no subordinate ids for .*single id mapping/);
});
