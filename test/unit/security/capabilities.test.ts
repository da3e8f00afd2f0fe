import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NookError } from '../../../src/lib/errors.js';
import {
  ALL_CAPABILITIES,
  CAPABILITY_NAMES,
  DEFAULT_CAPABILITIES,
  capabilitiesFromMask,
  capabilityMask,
  capabilityNumber,
  normalizeCapability,
  parseCapabilityList,
  readHostLastCap,
  resolveCapabilities,
  toCapabilitySets,
} from '../../../src/security/capabilities.js';

test('the table runs from CAP_CHOWN (0) to CAP_CHECKPOINT_RESTORE (40)', (t) => {
  t.is(CAPABILITY_NAMES.length, 41);
  t.is(capabilityNumber('CAP_CHOWN'), 0);
  t.is(capabilityNumber('CAP_NET_BIND_SERVICE'), 10);
  t.is(capabilityNumber('CAP_SYS_ADMIN'), 21);
  t.is(capabilityNumber('CAP_SETFCAP'), 31);
  t.is(capabilityNumber('CAP_PERFMON'), 38);
  t.is(capabilityNumber('CAP_BPF'), 39);
  t.is(capabilityNumber('CAP_CHECKPOINT_RESTORE'), 40);
});

test('names parse with or without CAP_, in any case', (t) => {
  t.is(normalizeCapability('chown'), 'CAP_CHOWN');
  t.is(normalizeCapability('CAP_CHOWN'), 'CAP_CHOWN');
  t.is(normalizeCapability(' cap_Net_Raw '), 'CAP_NET_RAW');
  t.deepEqual(parseCapabilityList(['net_admin,SYS_ADMIN', 'all', 'CAP_NET_ADMIN']), ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'ALL']);
});

test('an unknown name is a NookError that lists the valid ones and suggests the closest', (t) => {
  const error = t.throws(() => normalizeCapability('SYS_ADMN'), { instanceOf: NookError });
  t.regex(error!.message, /unknown capability "SYS_ADMN" \(did you mean SYS_ADMIN\?\)/);
  t.regex(error!.message, /CHOWN, DAC_OVERRIDE, .*CHECKPOINT_RESTORE, or ALL/);
  t.false(error!.message.includes('\n'));
  t.notRegex(t.throws(() => normalizeCapability('frobnicate'))!.message, /did you mean/);
  t.throws(() => resolveCapabilities({ drop: ['NOT_A_CAP'] }), { instanceOf: NookError, message: /unknown capability "NOT_A_CAP"/ });
});

test('the default set is podman\'s', (t) => {
  t.deepEqual(
    [...DEFAULT_CAPABILITIES].sort(),
    ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYS_CHROOT'],
  );
});

test('root in the container: bounding = effective = permitted, no inheritable or ambient', (t) => {
  const caps = resolveCapabilities();
  t.deepEqual(caps.bounding, ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_SETFCAP']);
  t.deepEqual(caps.effective, caps.bounding);
  t.deepEqual(caps.permitted, caps.bounding);
  t.deepEqual(caps.inheritable, []);
  t.deepEqual(caps.ambient, []);
  for (const user of ['', 'root', '0', 0, 'root:wheel', '0:0']) t.deepEqual(resolveCapabilities({ user }).effective, caps.bounding, String(user));
});

test('--cap-add and --cap-drop adjust the defaults', (t) => {
  const caps = resolveCapabilities({ add: ['net_raw', 'CAP_SYS_ADMIN'], drop: ['chown', 'SETFCAP'] });
  t.true(caps.bounding.includes('CAP_NET_RAW'));
  t.true(caps.bounding.includes('CAP_SYS_ADMIN'));
  t.false(caps.bounding.includes('CAP_CHOWN'));
  t.false(caps.bounding.includes('CAP_SETFCAP'));
  t.is(caps.bounding.length, 11);
  // sorted by number
  t.deepEqual(caps.bounding, [...caps.bounding].sort((a, b) => capabilityNumber(a) - capabilityNumber(b)));
});

test('ALL: add everything, or drop everything but what is added', (t) => {
  t.deepEqual(resolveCapabilities({ add: ['ALL'] }).bounding, ALL_CAPABILITIES);
  t.deepEqual(resolveCapabilities({ add: ['all'], drop: ['SYS_ADMIN'] }).bounding, ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN'));
  t.deepEqual(resolveCapabilities({ drop: ['ALL'] }).bounding, []);
  t.deepEqual(resolveCapabilities({ drop: ['ALL'], add: ['NET_BIND_SERVICE', 'kill'] }).bounding, ['CAP_KILL', 'CAP_NET_BIND_SERVICE']);
});

test('adding and dropping the same capability is an error', (t) => {
  t.throws(() => resolveCapabilities({ add: ['NET_ADMIN'], drop: ['cap_net_admin'] }), { instanceOf: NookError, message: /CAP_NET_ADMIN cannot be both added and dropped/ });
});

test('a non-root user gets only the added capabilities, in every set including ambient', (t) => {
  const plain = resolveCapabilities({ user: '1000' });
  t.deepEqual(plain.bounding, resolveCapabilities().bounding);
  t.deepEqual(plain.effective, []);
  t.deepEqual(plain.permitted, []);
  t.deepEqual(plain.ambient, []);
  const added = resolveCapabilities({ user: 'nobody:nogroup', add: ['NET_BIND_SERVICE', 'NET_RAW'] });
  t.deepEqual(added.effective, ['CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
  t.deepEqual(added.permitted, added.effective);
  t.deepEqual(added.inheritable, added.effective);
  t.deepEqual(added.ambient, added.effective);
  t.true(added.bounding.includes('CAP_NET_RAW'));
  t.deepEqual(resolveCapabilities({ user: 1000, add: ['ALL'] }).ambient, ALL_CAPABILITIES);
});

test('--privileged gives every capability the kernel knows', (t) => {
  t.deepEqual(resolveCapabilities({ privileged: true }).effective, ALL_CAPABILITIES);
  const older = resolveCapabilities({ privileged: true, lastCap: 37 });
  t.is(older.bounding.length, 38);
  t.false(older.bounding.includes('CAP_PERFMON'));
  t.deepEqual(resolveCapabilities({ privileged: true, user: '1000' }).effective, []);
  t.false(resolveCapabilities({ add: ['BPF'], lastCap: 38 }).bounding.includes('CAP_BPF'));
});

test('toCapabilitySets: decimal bit masks, bit N = capability N', (t) => {
  const sets = toCapabilitySets(resolveCapabilities());
  // bits 0,1,3,4,5,6,7,8,10,18,31
  t.is(sets.bounding, String(0x800405fb));
  t.is(sets.effective, sets.bounding);
  t.is(sets.inheritable, '0');
  t.is(sets.ambient, '0');
  t.is(capabilityMask(ALL_CAPABILITIES), String(2 ** 41 - 1));
  t.is(capabilityMask(['CAP_CHECKPOINT_RESTORE']), '1099511627776');
  t.is(toCapabilitySets({}).bounding, '0');
  t.deepEqual(capabilitiesFromMask(sets.bounding), resolveCapabilities().bounding);
  t.deepEqual(capabilitiesFromMask(capabilityMask(ALL_CAPABILITIES)), ALL_CAPABILITIES);
});

test('readHostLastCap reads the kernel file and falls back to the known maximum', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nook-caps-'));
  writeFileSync(join(dir, 'cap_last_cap'), '37\n');
  t.is(readHostLastCap(join(dir, 'cap_last_cap')), 37);
  t.is(readHostLastCap(join(dir, 'missing')), 40);
  t.true(readHostLastCap() >= 37);
});
