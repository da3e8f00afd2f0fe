import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NookError } from '../../../src/lib/errors.js';
import { AUDIT_ARCH } from '../../../src/security/seccomp/arch.js';
import { describeReturn } from '../../../src/security/seccomp/bpf.js';
import { compileSeccomp } from '../../../src/security/seccomp/compiler.js';
import { DEFAULT_DENIALS, defaultSeccompConfig } from '../../../src/security/seccomp/default-profile.js';
import { dockerProfileToOci, loadSeccompProfile, parseKernelVersion, seccompConfigForOption, seccompFromProfileText } from '../../../src/security/seccomp/profiles.js';
import { syscallTables } from '../../../src/security/seccomp/syscall-tables.js';
import { checkFilter, runFilter } from './bpf-interpreter.js';

const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_SETUID', 'CAP_SETGID'];

/** A profile in Docker's format (written for these tests): an allow-list with conditions on caps, arches and kernel. */
const dockerStyle = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 1,
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    { architecture: 'SCMP_ARCH_S390X', subArchitectures: ['SCMP_ARCH_S390'] },
  ],
  syscalls: [
    { names: ['read', 'write', 'exit_group', 'openat', 'close', 'chown32'], action: 'SCMP_ACT_ALLOW', comment: 'basics' },
    { name: 'getpid', action: 'SCMP_ACT_ALLOW' },
    { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
    { names: ['mount', 'umount2'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }], excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] } },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
    { names: ['io_uring_setup'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { minKernel: '99.0' } },
    { names: ['reboot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_BOOT', 'CAP_SYS_ADMIN'] } },
  ],
};

test('archMap picks the host\'s entry and its sub-architectures', (t) => {
  const x86 = dockerProfileToOci(dockerStyle, { capabilities: DEFAULT_CAPS, arch: 'x86_64', kernelVersion: '6.1.0' });
  t.deepEqual(x86.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const arm = dockerProfileToOci(dockerStyle, { capabilities: DEFAULT_CAPS, arch: 'aarch64', kernelVersion: '6.1.0' });
  t.deepEqual(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
});

test('includes and excludes are evaluated against caps, arch and kernel', (t) => {
  const names = (caps: string[], arch: 'x86_64' | 'aarch64', kernel: string): string[] =>
    (dockerProfileToOci(dockerStyle, { capabilities: caps, arch, kernelVersion: kernel }).syscalls ?? []).map((s) => `${s.names.join('+')}${s.args ? '(args)' : ''}`);
  const plain = names(DEFAULT_CAPS, 'x86_64', '6.1.0-13-amd64');
  t.deepEqual(plain, ['read+write+exit_group+openat+close+chown32', 'getpid', 'ptrace', 'clone(args)', 'arch_prctl', 'io_uring_setup']);
  const admin = names([...DEFAULT_CAPS, 'SYS_ADMIN'], 'x86_64', '6.1.0');
  t.deepEqual(admin, ['read+write+exit_group+openat+close+chown32', 'getpid', 'ptrace', 'mount+umount2', 'clone', 'arch_prctl', 'io_uring_setup']);
  t.false(names(DEFAULT_CAPS, 'x86_64', '4.4.0').includes('ptrace'), 'minKernel 4.8 excludes older kernels');
  t.false(names(DEFAULT_CAPS, 'aarch64', '6.1').includes('arch_prctl'), 'amd64-only rule');
  t.true(names(['CAP_SYS_BOOT', 'CAP_SYS_ADMIN'], 'x86_64', '6.1').includes('reboot'), 'every included cap is required');
  t.false(names(['CAP_SYS_BOOT'], 'x86_64', '6.1').includes('reboot'));
});

test('a Docker-format profile compiles and behaves', (t) => {
  const config = dockerProfileToOci(dockerStyle, { capabilities: DEFAULT_CAPS, arch: 'x86_64', kernelVersion: '6.1.0' });
  const c = compileSeccomp(config, 'x86_64');
  checkFilter(c.instructions);
  const decide = (arch: 'x86_64' | 'x86', name: string, args: number[] = []): string =>
    describeReturn(runFilter(c.instructions, { nr: syscallTables[arch][name]!, arch: AUDIT_ARCH[arch], args }));
  t.is(decide('x86_64', 'read'), 'ALLOW');
  t.is(decide('x86_64', 'mount'), 'ERRNO(1 EPERM)');
  t.is(decide('x86_64', 'clone', [17]), 'ALLOW');
  t.is(decide('x86_64', 'clone', [0x10000000 | 17]), 'ERRNO(1 EPERM)');
  t.is(decide('x86_64', 'io_uring_setup'), 'ERRNO(38 ENOSYS)');
  t.is(decide('x86', 'chown32'), 'ALLOW');
  t.is(decide('x86', 'arch_prctl'), 'ALLOW', 'the i386 table has arch_prctl too (384)');
  t.deepEqual(c.arches, ['x86_64', 'x86']);
});

test('profile format errors are NookErrors that say what is wrong', (t) => {
  const ctx = { capabilities: DEFAULT_CAPS, arch: 'x86_64' as const, kernelVersion: '6.1' };
  t.throws(() => dockerProfileToOci({ ...dockerStyle, architectures: ['SCMP_ARCH_X86_64'] }, ctx), { instanceOf: NookError, message: /either 'architectures' or 'archMap'/ });
  t.throws(() => dockerProfileToOci({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ name: 'read', names: ['write'], action: 'SCMP_ACT_ERRNO' }] }, ctx), { instanceOf: NookError, message: /either 'name' or 'names'/ });
  t.throws(() => dockerProfileToOci({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', includes: { minKernel: 'new' } }] }, ctx), { message: /minKernel "new" is not a kernel version/ });
  t.throws(() => dockerProfileToOci([], ctx), { message: /must be a JSON object/ });
  t.throws(() => seccompFromProfileText('{"defaultAction": ', 'broken.json', ctx), { instanceOf: NookError, message: /seccomp profile broken.json is not valid JSON/ });
  t.throws(() => dockerProfileToOci({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'ALLOW' }] }, ctx), { message: /syscalls\[0\]\.action: unknown action "ALLOW"/ });
});

test('64-bit values in profile text keep their precision, and survive JSON again', (t) => {
  const text = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":18446744073709551615,"valueTwo":9007199254740993,"op":"SCMP_CMP_MASKED_EQ"}]}]}';
  const config = seccompFromProfileText(text, 'big.json', { capabilities: [], arch: 'x86_64', kernelVersion: '6.1' });
  t.is(config.syscalls![0]!.args![0]!.value, '18446744073709551615');
  t.is(config.syscalls![0]!.args![0]!.valueTwo, '9007199254740993');
  const again = JSON.parse(JSON.stringify(config));
  const c = compileSeccomp(again, 'x86_64');
  t.is(describeReturn(runFilter(c.instructions, { nr: syscallTables.x86_64.ioctl!, arch: AUDIT_ARCH.x86_64, args: [0, 9007199254740993n] })), 'ERRNO(1 EPERM)');
  t.is(describeReturn(runFilter(c.instructions, { nr: syscallTables.x86_64.ioctl!, arch: AUDIT_ARCH.x86_64, args: [0, 9007199254740992n] })), 'ALLOW');
});

test('loadSeccompProfile reads files; a missing file says so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nook-seccomp-'));
  const path = join(dir, 'profile.json');
  writeFileSync(path, JSON.stringify(dockerStyle));
  const config = await loadSeccompProfile(path, { capabilities: DEFAULT_CAPS, arch: 'x86_64', kernelVersion: '6.1' });
  t.is(config.defaultAction, 'SCMP_ACT_ERRNO');
  await t.throwsAsync(loadSeccompProfile(join(dir, 'nope.json'), { capabilities: [] }), { instanceOf: NookError, message: /cannot read seccomp profile .*nope\.json: no such file/ });
});

test('--security-opt seccomp=: default, unconfined, or a file', async (t) => {
  const ctx = { capabilities: DEFAULT_CAPS, arch: 'x86_64' as const };
  t.deepEqual(await seccompConfigForOption(undefined, ctx), defaultSeccompConfig({ capabilities: DEFAULT_CAPS, arch: 'x86_64' }));
  t.deepEqual(await seccompConfigForOption('', ctx), defaultSeccompConfig({ capabilities: DEFAULT_CAPS, arch: 'x86_64' }));
  t.is(await seccompConfigForOption('unconfined', ctx), null);
  await t.throwsAsync(seccompConfigForOption('/nonexistent/profile.json', ctx), { instanceOf: NookError });
});

test('the default config is a deny-list, JSON-safe, with a reason for each denial', (t) => {
  const config = defaultSeccompConfig({ arch: 'x86_64' });
  t.is(config.defaultAction, 'SCMP_ACT_ALLOW');
  t.deepEqual(config.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  t.deepEqual(JSON.parse(JSON.stringify(config)), config);
  t.deepEqual(defaultSeccompConfig({ arch: 'aarch64' }).architectures, ['SCMP_ARCH_AARCH64']);
  for (const denial of DEFAULT_DENIALS) {
    t.true(denial.why.length > 10, denial.names.join());
    for (const name of denial.names) {
      const known = syscallTables.x86_64[name] ?? syscallTables.x86[name] ?? syscallTables.aarch64[name];
      t.not(known, undefined, `${name} is a system call somewhere`);
    }
  }
});

test('parseKernelVersion reads distribution kernel strings', (t) => {
  t.deepEqual(parseKernelVersion('6.8.0-45-generic'), [6, 8, 0]);
  t.deepEqual(parseKernelVersion('4.8'), [4, 8, 0]);
  t.deepEqual(parseKernelVersion('6.18.44-fc-v595'), [6, 18, 44]);
});
