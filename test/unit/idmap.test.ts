/**
 * Subordinate id files, the getsubids fallback, and the mappings built from
 * them (default, several ranges, keep-id, none at all, real root).
 */
import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIdMapping, computeIdMapping, hostIdFor } from '../../src/idmap/mapping.js';
import { nsswitchSubidService, parseGetsubidsOutput, parseSubidFile, readSubordinateIds } from '../../src/idmap/subids.js';

const alice = { name: 'alice', uid: 1000, gid: 1000 };
const helpers = { newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap' };

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nook-idmap-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('subuid lines by name and by uid, in file order, skipping the rest', (t) => {
  const text = [
    '# comment',
    'bob:100000:65536',
    'alice:165536:65536',
    '',
    '  1000:300000:1000  ',
    'alice:notanumber:5',
    'alice:1:0',
    'alice:4294967295:2',
    'alice:1:2:3',
    'alice:165536:65536',
  ].join('\n');
  t.deepEqual(parseSubidFile(text, alice), [
    { start: 165536, count: 65536 },
    { start: 300000, count: 1000 },
  ]);
  t.deepEqual(parseSubidFile(text, { name: null, uid: 1000 }), [{ start: 300000, count: 1000 }]);
  t.deepEqual(parseSubidFile(text, { name: 'carol', uid: 1002 }), []);
});

test('getsubids output', (t) => {
  t.deepEqual(parseGetsubidsOutput('0: alice 100000 65536\n1: alice 300000 10\n'), [
    { start: 100000, count: 65536 },
    { start: 300000, count: 10 },
  ]);
  t.deepEqual(parseGetsubidsOutput('Error fetching ranges\n'), []);
});

test('subordinate ids from injected files; getsubids only when the files have nothing', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'subuid'), 'alice:100000:65536\n');
  writeFileSync(join(dir, 'subgid'), 'bob:100000:65536\n');
  // a stand-in for shadow-utils' getsubids, as nsswitch would answer for gids
  const getsubids = join(dir, 'getsubids');
  writeFileSync(getsubids, '#!/bin/sh\nif [ "$1" = -g ]; then echo "0: $2 500000 1000"; else echo "0: $1 999 1"; fi\n');
  chmodSync(getsubids, 0o755);

  const ids = await readSubordinateIds(alice, { subuidPath: join(dir, 'subuid'), subgidPath: join(dir, 'subgid'), getsubidsPath: getsubids });
  t.deepEqual(ids.uids, [{ start: 100000, count: 65536 }]);
  t.is(ids.uidSource, join(dir, 'subuid'));
  t.deepEqual(ids.gids, [{ start: 500000, count: 1000 }]);
  t.is(ids.gidSource, 'getsubids');

  const none = await readSubordinateIds(alice, { subuidPath: join(dir, 'missing'), subgidPath: join(dir, 'missing2'), getsubidsPath: null });
  t.deepEqual(none, { uids: [], gids: [], uidSource: 'none', gidSource: 'none' });
});

test('getsubids is asked only when nsswitch.conf names a subid service beyond the files', async (t) => {
  t.is(nsswitchSubidService('passwd: files systemd\ngroup: files\n'), null);
  t.is(nsswitchSubidService('passwd: files\n# subid: sss\nsubid:   sss   # LDAP through sssd\n'), 'sss');
  t.is(nsswitchSubidService('subid: files\n'), 'files');
  // Without the service (this test machine), a user absent from the files gets no ranges, without a getsubids process.
  const dir = tempDir(t);
  writeFileSync(join(dir, 'nsswitch.conf'), 'passwd: files\n');
  const none = await readSubordinateIds(alice, { subuidPath: join(dir, 'missing'), subgidPath: join(dir, 'missing2'), nsswitchPath: join(dir, 'nsswitch.conf') });
  t.deepEqual(none, { uids: [], gids: [], uidSource: 'none', gidSource: 'none' });
});

test('default mapping: the user is 0, subordinate ids are 1..N across ranges', (t) => {
  const m = buildIdMapping(alice, { uids: [{ start: 100000, count: 65536 }, { start: 300000, count: 10 }], gids: [{ start: 200000, count: 65536 }] }, helpers);
  t.deepEqual(m.uidMap, [
    { inside: 0, outside: 1000, count: 1 },
    { inside: 1, outside: 100000, count: 65536 },
    { inside: 65537, outside: 300000, count: 10 },
  ]);
  t.deepEqual(m.gidMap, [
    { inside: 0, outside: 1000, count: 1 },
    { inside: 1, outside: 200000, count: 65536 },
  ]);
  t.is(m.uidHelper, helpers.newuidmap);
  t.is(m.gidHelper, helpers.newgidmap);
  t.is(m.setgroups, 'allow');
  t.is(m.uidCount, 65547);
  t.is(m.containerUid, 0);
  t.deepEqual(m.warnings, []);
  t.is(hostIdFor(m.uidMap, 0), 1000);
  t.is(hostIdFor(m.uidMap, 1000), 100999);
  t.is(hostIdFor(m.uidMap, 65537), 300000);
  t.is(hostIdFor(m.uidMap, 65547), null);
});

test('no subordinate ids: a single mapping, setgroups denied, a warning that says what is lost', (t) => {
  const m = buildIdMapping(alice, { uids: [], gids: [] }, helpers);
  t.deepEqual(m.uidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.deepEqual(m.gidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.is(m.uidHelper, null);
  t.is(m.gidHelper, null);
  t.is(m.setgroups, 'deny');
  t.deepEqual(m.warnings, [
    'no subordinate ids for alice in /etc/subuid and /etc/subgid: running with a single id mapping; files owned by other ids and chown to them will fail',
  ]);
});

test('subordinate ids without newuidmap: a single mapping and a warning naming the package', (t) => {
  const m = buildIdMapping(alice, { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] }, { newuidmap: null, newgidmap: helpers.newgidmap });
  t.deepEqual(m.uidMap, [{ inside: 0, outside: 1000, count: 1 }]);
  t.is(m.uidHelper, null);
  t.is(m.gidMap.length, 2);
  t.is(m.setgroups, 'allow');
  t.is(m.warnings.length, 1);
  t.regex(m.warnings[0]!, /newuidmap is not installed.*single id mapping/);
});

test('keep-id: the user keeps their number, subordinate ids fill 0..uid-1 and the rest', (t) => {
  const m = buildIdMapping(alice, { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] }, helpers, { keepId: true });
  t.deepEqual(m.uidMap, [
    { inside: 0, outside: 100000, count: 1000 },
    { inside: 1000, outside: 1000, count: 1 },
    { inside: 1001, outside: 101000, count: 64536 },
  ]);
  t.is(m.uidCount, 65537);
  t.is(m.containerUid, 1000);
  t.is(m.containerGid, 1000);

  // ranges split where the user's own id sits
  const split = buildIdMapping(alice, { uids: [{ start: 100000, count: 600 }, { start: 200000, count: 600 }], gids: [] }, helpers, { keepId: true });
  t.deepEqual(split.uidMap, [
    { inside: 0, outside: 100000, count: 600 },
    { inside: 600, outside: 200000, count: 400 },
    { inside: 1000, outside: 1000, count: 1 },
    { inside: 1001, outside: 200400, count: 200 },
  ]);
  t.deepEqual(split.gidMap, [{ inside: 1000, outside: 1000, count: 1 }]);
  t.is(split.setgroups, 'deny');

  // fewer subordinate ids than the uid: what there is, then the user
  const small = buildIdMapping({ name: 'u', uid: 70000, gid: 70000 }, { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] }, helpers, { keepId: true });
  t.deepEqual(small.uidMap, [
    { inside: 0, outside: 100000, count: 65536 },
    { inside: 70000, outside: 70000, count: 1 },
  ]);
});

test('real root maps every id to itself, without helpers', (t) => {
  const m = buildIdMapping({ name: 'root', uid: 0, gid: 0 }, { uids: [], gids: [] }, helpers);
  t.deepEqual(m.uidMap, [{ inside: 0, outside: 0, count: 4294967295 }]);
  t.is(m.uidHelper, null);
  t.deepEqual(m.warnings, []);
});

test('computeIdMapping reads the injected files and helper paths', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'subuid'), 'alice:100000:65536\n');
  writeFileSync(join(dir, 'subgid'), '1000:100000:65536\n');
  const m = await computeIdMapping(alice, {
    subuidPath: join(dir, 'subuid'),
    subgidPath: join(dir, 'subgid'),
    getsubidsPath: null,
    newuidmapPath: '/opt/newuidmap',
    newgidmapPath: '/opt/newgidmap',
  });
  t.is(m.uidHelper, '/opt/newuidmap');
  t.deepEqual(m.gidMap, [
    { inside: 0, outside: 1000, count: 1 },
    { inside: 1, outside: 100000, count: 65536 },
  ]);
  const none = await computeIdMapping(alice, { subuidPath: join(dir, 'nope'), subgidPath: join(dir, 'nope'), getsubidsPath: null });
  t.regex(none.warnings[0]!, /no subordinate ids for alice in .*nope and .*nope/);
});
