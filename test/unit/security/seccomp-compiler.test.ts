import test from 'ava';
import { NookError } from '../../../src/lib/errors.js';
import { AUDIT_ARCH, type SeccompArch } from '../../../src/security/seccomp/arch.js';
import { OP, decodeFilter, describeReturn, encodeFilter } from '../../../src/security/seccomp/bpf.js';
import { compileSeccomp, type CompiledSeccomp } from '../../../src/security/seccomp/compiler.js';
import { defaultSeccompConfig } from '../../../src/security/seccomp/default-profile.js';
import { disassemble } from '../../../src/security/seccomp/disassemble.js';
import type { LinuxSeccomp, LinuxSeccompArg, SeccompOperator } from '../../../src/security/seccomp/oci.js';
import { syscallTables } from '../../../src/security/seccomp/syscall-tables.js';
import { checkFilter, runFilter } from './bpf-interpreter.js';

/** What the program decides for a call by name on an ABI, as "ALLOW", "ERRNO(1 EPERM)", ... */
function decide(compiled: CompiledSeccomp, arch: SeccompArch, name: string, args: (bigint | number)[] = []): string {
  const nr = syscallTables[arch][name];
  if (nr === undefined) throw new Error(`no ${name} on ${arch}`);
  return describeReturn(runFilter(compiled.instructions, { nr, arch: AUDIT_ARCH[arch], args }));
}

function compileChecked(config: LinuxSeccomp, arch: SeccompArch = 'x86_64'): CompiledSeccomp {
  const compiled = compileSeccomp(config, arch);
  checkFilter(compiled.instructions);
  return compiled;
}

const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWNET = 0x40000000;
const THREAD_FLAGS = 0x3d0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID, as pthread_create

test('the program checks the architecture first and kills foreign ABIs', (t) => {
  const compiled = compileChecked(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  const [first, second] = compiled.instructions;
  t.deepEqual(first, { code: OP.LD_ABS, jt: 0, jf: 0, k: 4 });
  t.is(second!.code, OP.JEQ);
  t.is(second!.k, AUDIT_ARCH.x86_64);
  t.deepEqual(compiled.arches, ['x86_64', 'x86']);
  t.is(describeReturn(runFilter(compiled.instructions, { nr: 39, arch: AUDIT_ARCH.aarch64 })), 'KILL_PROCESS');
  t.is(describeReturn(runFilter(compiled.instructions, { nr: 39, arch: 0x12345678 })), 'KILL_PROCESS');
});

test('x32 system calls on x86_64 get ENOSYS, whatever the profile says', (t) => {
  const compiled = compileChecked({ defaultAction: 'SCMP_ACT_ALLOW' });
  const getpid = syscallTables.x86_64.getpid!;
  t.is(describeReturn(runFilter(compiled.instructions, { nr: getpid, arch: AUDIT_ARCH.x86_64 })), 'ALLOW');
  t.is(describeReturn(runFilter(compiled.instructions, { nr: 0x40000000 | getpid, arch: AUDIT_ARCH.x86_64 })), 'ERRNO(38 ENOSYS)');
  t.is(describeReturn(runFilter(compiled.instructions, { nr: -1, arch: AUDIT_ARCH.x86_64 })), 'ERRNO(38 ENOSYS)');
});

test('the default profile denies what it lists and allows everything else', (t) => {
  const c = compileChecked(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  for (const name of ['keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'userfaultfd', 'kexec_load', 'init_module', 'mount', 'umount2', 'pivot_root', 'setns', 'open_by_handle_at', 'syslog', 'swapon', 'acct', 'kcmp', 'iopl', 'settimeofday', 'clock_settime', 'fsopen', 'move_mount']) {
    t.is(decide(c, 'x86_64', name), 'ERRNO(1 EPERM)', name);
  }
  for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'clone3']) t.is(decide(c, 'x86_64', name), 'ERRNO(38 ENOSYS)', name);
  for (const name of ['read', 'write', 'openat', 'execve', 'getpid', 'ptrace', 'process_vm_readv', 'name_to_handle_at', 'chroot', 'adjtimex', 'mbind', 'futex_wake', 'statmount']) {
    t.is(decide(c, 'x86_64', name), 'ALLOW', name);
  }
  // A number no table knows (a future system call) is allowed: it is a deny-list.
  t.is(describeReturn(runFilter(c.instructions, { nr: 999, arch: AUDIT_ARCH.x86_64 })), 'ALLOW');
});

test('the default profile filters namespace flags of clone and unshare, not the other flags', (t) => {
  const c = compileChecked(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  t.is(decide(c, 'x86_64', 'clone', [THREAD_FLAGS]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'clone', [17 /* SIGCHLD: fork */]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'clone', [CLONE_NEWUSER | 17]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'clone', [CLONE_NEWNET]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'unshare', [0x400 /* CLONE_FILES */]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'unshare', [CLONE_NEWUSER]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'unshare', [0x80 /* CLONE_NEWTIME */]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'unshare', [(1n << 40n) | BigInt(CLONE_NEWUSER)]), 'ERRNO(1 EPERM)');
});

test('the default profile: vsock sockets, and personality with MMAP_PAGE_ZERO', (t) => {
  const c = compileChecked(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  t.is(decide(c, 'x86_64', 'socket', [2 /* AF_INET */, 1, 0]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'socket', [40 /* AF_VSOCK */, 1, 0]), 'ERRNO(97 EAFNOSUPPORT)');
  // The kernel takes an int: garbage in the upper half must not get past the check.
  t.is(decide(c, 'x86_64', 'socket', [(1n << 32n) | 40n, 1, 0]), 'ERRNO(97 EAFNOSUPPORT)');
  t.is(decide(c, 'x86_64', 'personality', [0]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [8 /* PER_LINUX32 */]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [0x0040000 /* ADDR_NO_RANDOMIZE */]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [0xffffffff]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [0x0100000]), 'ERRNO(1 EPERM)');
});

test('the default profile covers i386 processes on x86_64 with i386 numbers', (t) => {
  const c = compileChecked(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  t.not(syscallTables.x86.keyctl, syscallTables.x86_64.keyctl);
  t.is(decide(c, 'x86', 'keyctl'), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86', 'getpid'), 'ALLOW');
  t.is(decide(c, 'x86', 'vm86'), 'ERRNO(1 EPERM)');
  // Only the low halves exist on i386.
  t.is(decide(c, 'x86', 'clone', [CLONE_NEWUSER]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86', 'clone', [17]), 'ALLOW');
  // An i386 number that is x86_64's keyctl must not be denied on the i386 side.
  const x86name = Object.entries(syscallTables.x86).find(([, n]) => n === syscallTables.x86_64.keyctl)![0];
  t.is(decide(c, 'x86', x86name), 'ALLOW');
});

test('the default profile for aarch64 uses the generic table and kills x86_64 callers', (t) => {
  const c = compileChecked(defaultSeccompConfig({ arch: 'aarch64' }), 'aarch64');
  t.deepEqual(c.arches, ['aarch64']);
  t.is(syscallTables.aarch64.keyctl, 219);
  t.is(decide(c, 'aarch64', 'keyctl'), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'aarch64', 'mount'), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'aarch64', 'openat'), 'ALLOW');
  t.is(decide(c, 'aarch64', 'clone', [CLONE_NEWUSER]), 'ERRNO(1 EPERM)');
  t.is(describeReturn(runFilter(c.instructions, { nr: 219, arch: AUDIT_ARCH.x86_64 })), 'KILL_PROCESS');
});

test('capabilities in the bounding set lift the denials they guard', (t) => {
  const admin = compileChecked(defaultSeccompConfig({ arch: 'x86_64', capabilities: ['CAP_CHOWN', 'CAP_SYS_ADMIN'] }));
  for (const name of ['mount', 'umount2', 'setns', 'pivot_root', 'clone3', 'bpf', 'perf_event_open', 'syslog']) t.is(decide(admin, 'x86_64', name), 'ALLOW', name);
  t.is(decide(admin, 'x86_64', 'unshare', [CLONE_NEWUSER]), 'ALLOW');
  t.is(decide(admin, 'x86_64', 'clone', [CLONE_NEWUSER]), 'ALLOW');
  t.is(decide(admin, 'x86_64', 'keyctl'), 'ERRNO(1 EPERM)', 'keyctl is denied whatever the capabilities');
  const ptrace = compileChecked(defaultSeccompConfig({ arch: 'x86_64', capabilities: ['sys_ptrace'] }));
  t.is(decide(ptrace, 'x86_64', 'kcmp'), 'ALLOW');
  t.is(decide(ptrace, 'x86_64', 'mount'), 'ERRNO(1 EPERM)');
});

test('actions map to the kernel return values', (t) => {
  const config: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 38,
    syscalls: [
      { names: ['getpid'], action: 'SCMP_ACT_ALLOW' },
      { names: ['getppid'], action: 'SCMP_ACT_ERRNO' },
      { names: ['getuid'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
      { names: ['getgid'], action: 'SCMP_ACT_KILL' },
      { names: ['geteuid'], action: 'SCMP_ACT_KILL_THREAD' },
      { names: ['getegid'], action: 'SCMP_ACT_KILL_PROCESS' },
      { names: ['gettid'], action: 'SCMP_ACT_TRAP' },
      { names: ['getpgrp'], action: 'SCMP_ACT_LOG' },
      { names: ['getsid'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
      { names: ['setsid'], action: 'SCMP_ACT_TRACE' },
    ],
  };
  const c = compileChecked(config);
  t.is(decide(c, 'x86_64', 'getpid'), 'ALLOW');
  t.is(decide(c, 'x86_64', 'getppid'), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'getuid'), 'ERRNO(13 EACCES)');
  t.is(decide(c, 'x86_64', 'getgid'), 'KILL_THREAD');
  t.is(decide(c, 'x86_64', 'geteuid'), 'KILL_THREAD');
  t.is(decide(c, 'x86_64', 'getegid'), 'KILL_PROCESS');
  t.is(decide(c, 'x86_64', 'gettid'), 'TRAP');
  t.is(decide(c, 'x86_64', 'getpgrp'), 'LOG');
  t.is(decide(c, 'x86_64', 'getsid'), 'TRACE(7)');
  t.is(decide(c, 'x86_64', 'setsid'), 'TRACE(1)');
  t.is(decide(c, 'x86_64', 'read'), 'ERRNO(38 ENOSYS)');
  t.is(runFilter(c.instructions, { nr: syscallTables.x86_64.getegid!, arch: AUDIT_ARCH.x86_64 }), 0x80000000);
});

test('a Docker-sized allow-list compiles with long jumps and decides every call right', (t) => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const names = Object.keys(syscallTables[arch]);
    const denied = new Set(['keyctl', 'add_key', 'mount', 'reboot', 'bpf']);
    const config: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: arch === 'x86_64' ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
      syscalls: [
        { names: names.filter((n) => !denied.has(n) && n !== 'socket' && n !== 'personality'), action: 'SCMP_ACT_ALLOW' },
        { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 4294967295, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    const c = compileChecked(config, arch);
    t.true(names.length > 300, `${arch} table has ${names.length} names`);
    t.true(c.instructions.some((i) => i.code === OP.JA), `${arch}: far targets went through ja trampolines`);
    t.true(c.instructions.length < 4096);
    for (const name of names) {
      // With no arguments given, socket(0) passes `!= 40` and personality(0) is allowed explicitly.
      t.is(decide(c, arch, name), denied.has(name) ? 'ERRNO(1 EPERM)' : 'ALLOW', `${arch} ${name}`);
    }
    t.is(decide(c, arch, 'socket', [2]), 'ALLOW');
    t.is(decide(c, arch, 'socket', [40]), 'ERRNO(1 EPERM)');
    t.is(decide(c, arch, 'personality', [8]), 'ALLOW');
    t.is(decide(c, arch, 'personality', [0xffffffff]), 'ALLOW');
    t.is(decide(c, arch, 'personality', [9]), 'ERRNO(1 EPERM)');
    if (arch === 'x86_64') {
      // x86_64's names that i386 also has are allowed there; i386-only names (chown32...) are not in the list.
      for (const name of Object.keys(syscallTables.x86)) {
        const expected = !denied.has(name) && syscallTables.x86_64[name] !== undefined ? 'ALLOW' : 'ERRNO(1 EPERM)';
        t.is(decide(c, 'x86', name), expected, `x86 ${name}`);
      }
    }
    // Numbers between and beyond known ones fall to the default.
    t.is(describeReturn(runFilter(c.instructions, { nr: 100000, arch: AUDIT_ARCH[arch] })), 'ERRNO(1 EPERM)');
  }
});

// Exhaustive checks of the 64-bit comparisons against BigInt arithmetic.
const OPERATORS: SeccompOperator[] = ['SCMP_CMP_EQ', 'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_GT', 'SCMP_CMP_GE', 'SCMP_CMP_MASKED_EQ'];
const M64 = (1n << 64n) - 1n;

function holds(op: SeccompOperator, arg: bigint, value: bigint, valueTwo: bigint): boolean {
  switch (op) {
    case 'SCMP_CMP_EQ':
      return arg === value;
    case 'SCMP_CMP_NE':
      return arg !== value;
    case 'SCMP_CMP_LT':
      return arg < value;
    case 'SCMP_CMP_LE':
      return arg <= value;
    case 'SCMP_CMP_GT':
      return arg > value;
    case 'SCMP_CMP_GE':
      return arg >= value;
    case 'SCMP_CMP_MASKED_EQ':
      return (arg & value) === valueTwo;
  }
}

function interesting(): bigint[] {
  const halvesOf = [0n, 1n, 2n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn];
  const out: bigint[] = [];
  for (const hi of halvesOf) for (const lo of halvesOf) out.push((hi << 32n) | lo);
  return out;
}

test('64-bit argument comparisons agree with BigInt arithmetic on boundary values', (t) => {
  const values = interesting();
  let checked = 0;
  for (const op of OPERATORS) {
    for (const value of values) {
      const valueTwo = op === 'SCMP_CMP_MASKED_EQ' ? value & 0x00000001_80000001n : 0n;
      const arg: LinuxSeccompArg = { index: 2, op, value: value.toString(), valueTwo: valueTwo.toString() };
      const c = compileChecked({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [arg] }] });
      for (const a of values) {
        const got = decide(c, 'x86_64', 'ioctl', [0, 0, a]) === 'ERRNO(22 EINVAL)';
        if (got !== holds(op, a, value, valueTwo)) t.fail(`${op} arg=0x${a.toString(16)} value=0x${value.toString(16)} valueTwo=0x${valueTwo.toString(16)}: filter says ${got}`);
        checked += 1;
      }
    }
  }
  t.is(checked, OPERATORS.length * values.length * values.length);
});

test('64-bit comparisons agree with BigInt arithmetic on random values', (t) => {
  let seed = 0x2545f491n;
  const random64 = (): bigint => {
    seed = (seed * 6364136223846793005n + 1442695040888963407n) & M64;
    return seed;
  };
  for (const op of OPERATORS) {
    for (let round = 0; round < 20; round += 1) {
      const value = random64();
      const valueTwo = op === 'SCMP_CMP_MASKED_EQ' ? random64() & value : 0n;
      const c = compileChecked({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_KILL_PROCESS', args: [{ index: 5, op, value: value.toString(), valueTwo: valueTwo.toString() }] }] });
      const probes = [value, value - 1n, value + 1n, value ^ (1n << 32n), value ^ 1n, random64(), random64(), value | valueTwo].map((v) => v & M64);
      for (const a of probes) {
        const got = decide(c, 'x86_64', 'ioctl', [0, 0, 0, 0, 0, a]) === 'KILL_PROCESS';
        t.is(got, holds(op, a, value, valueTwo), `${op} 0x${a.toString(16)} vs 0x${value.toString(16)}`);
      }
    }
  }
});

test('on i386 only the low 32 bits are compared', (t) => {
  const c = compileChecked(
    {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86'],
      syscalls: [
        { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, op: 'SCMP_CMP_GT', value: 100 }] },
        { names: ['fcntl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, op: 'SCMP_CMP_MASKED_EQ', value: 0xf0, valueTwo: 0x30 }] },
      ],
    },
    'x86_64',
  );
  t.is(decide(c, 'x86', 'ioctl', [0, 101]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86', 'ioctl', [0, 100]), 'ALLOW');
  t.is(decide(c, 'x86', 'ioctl', [0, (1n << 32n) | 5n]), 'ALLOW');
  t.is(decide(c, 'x86', 'fcntl', [0, 0x3f]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86', 'fcntl', [0, 0x4f]), 'ALLOW');
  // The x86_64 side compares all 64 bits.
  t.is(decide(c, 'x86_64', 'ioctl', [0, (1n << 32n) | 5n]), 'ERRNO(1 EPERM)');
});

test('conditions of one rule are ANDed; the first matching rule wins; then the unconditional rule', (t) => {
  const c = compileChecked({
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [
      { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 1 }, { index: 1, op: 'SCMP_CMP_EQ', value: 2 }] },
      { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 1 }] },
      { names: ['ioctl'], action: 'SCMP_ACT_LOG' },
      { names: ['ioctl'], action: 'SCMP_ACT_KILL', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 9 }] },
    ],
  });
  t.is(decide(c, 'x86_64', 'ioctl', [1, 2]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'ioctl', [1, 3]), 'ERRNO(13 EACCES)');
  t.is(decide(c, 'x86_64', 'ioctl', [9, 0]), 'KILL_THREAD', 'a conditional rule listed after the unconditional one still comes first');
  t.is(decide(c, 'x86_64', 'ioctl', [2, 2]), 'LOG');
  t.is(decide(c, 'x86_64', 'read'), 'ERRNO(1 EPERM)');
});

test('a rule comparing one argument twice means any of the comparisons (runc)', (t) => {
  const c = compileChecked({
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: 0 }, { index: 0, op: 'SCMP_CMP_EQ', value: 8 }] }],
  });
  t.is(decide(c, 'x86_64', 'personality', [0]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [8]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'personality', [9]), 'ERRNO(1 EPERM)');
});

test('names an ABI does not have are skipped and reported', (t) => {
  const c = compileChecked({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['keyctl', 'chown32', 'no_such_call'], action: 'SCMP_ACT_ERRNO' }] }, 'x86_64');
  t.deepEqual(c.unknownNames, ['chown32', 'no_such_call']);
  t.is(decide(c, 'x86_64', 'keyctl'), 'ERRNO(1 EPERM)');
  const both = compileChecked({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86'], syscalls: [{ names: ['chown32'], action: 'SCMP_ACT_ERRNO' }] }, 'x86_64');
  t.deepEqual(both.unknownNames, []);
  t.is(decide(both, 'x86', 'chown32'), 'ERRNO(1 EPERM)');
});

test('an empty profile is an arch check and the default action', (t) => {
  const c = compileChecked({ defaultAction: 'SCMP_ACT_LOG' }, 'aarch64');
  t.is(c.instructions.length, 5);
  t.is(describeReturn(runFilter(c.instructions, { nr: 1, arch: AUDIT_ARCH.aarch64 })), 'LOG');
});

test('flags become seccomp(2) flag bits; agents are refused', (t) => {
  t.is(compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] }, 'x86_64').flags, 6);
  t.is(compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, 'x86_64').flags, 0);
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_NEW_LISTENER'] }, 'x86_64'), { instanceOf: NookError });
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_NOTIFY' }, 'x86_64'), { instanceOf: NookError, message: /NOTIFY/ });
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock' }, 'x86_64'), { instanceOf: NookError });
});

test('invalid configs are refused with a message that says where', (t) => {
  const bad = (config: unknown, message: RegExp): void => {
    t.throws(() => compileSeccomp(config as LinuxSeccomp, 'x86_64'), { instanceOf: NookError, message });
  };
  bad({ defaultAction: 'SCMP_ACT_MAYBE' }, /defaultAction: unknown action "SCMP_ACT_MAYBE"/);
  bad({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 5000 }, /defaultErrnoRet: errno must be an integer from 0 to 4095/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }, /syscalls\[0\]\.args\[0\]: argument index must be 0 to 5/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_ABOUT' }] }] }, /unknown operator/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: '123456789012345678901234', op: 'SCMP_CMP_EQ' }] }] }, /does not fit in 64 bits/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ name: 'read', action: 'SCMP_ACT_ERRNO' }] }, /names must be a list/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_FAST'] }, /unknown flag/);
});

test('a program longer than the kernel accepts is refused', (t) => {
  const args = Array.from({ length: 900 }, (_, i) => ({ names: ['ioctl'], action: 'SCMP_ACT_ERRNO' as const, args: [{ index: 1, op: 'SCMP_CMP_EQ' as const, value: i + 1 }] }));
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: args }, 'x86_64'), { instanceOf: NookError, message: /more than the kernel accepts \(4096\)/ });
});

test('negative and huge argument values are taken as 64-bit two\'s complement', (t) => {
  const c = compileChecked({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: -1 }] },
      { names: ['fcntl'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: '18446744073709551614' }] },
      { names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: '0xdeadbeefcafe' }] },
    ],
  });
  t.is(decide(c, 'x86_64', 'ioctl', [M64]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'ioctl', [0xffffffff]), 'ALLOW');
  t.is(decide(c, 'x86_64', 'fcntl', [M64 - 1n]), 'ERRNO(1 EPERM)');
  t.is(decide(c, 'x86_64', 'read', [0xdeadbeefcafen]), 'ERRNO(1 EPERM)');
});

test('hex is sock_filter structs, 8 little-endian bytes each, and decodes back', (t) => {
  const c = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, 'x86_64');
  t.is(c.hex.length, c.instructions.length * 16);
  // ld [4]: code 0x0020, jt 0, jf 0, k 4
  t.true(c.hex.startsWith('2000000004000000'));
  // jeq AUDIT_ARCH_X86_64 (0xc000003e), true: skip the `ret KILL_PROCESS` that follows
  t.is(c.hex.slice(16, 32), '150001003e0000c0');
  t.is(c.hex.slice(32, 48), '0600000000000080');
  t.deepEqual(decodeFilter(c.hex), c.instructions);
  t.is(encodeFilter(decodeFilter(c.hex)), c.hex);
  t.throws(() => decodeFilter('abc'), { instanceOf: NookError });
});

test('disassemble names the fields, the ABIs, the system calls and the actions', (t) => {
  const c = compileSeccomp(defaultSeccompConfig({ arch: 'x86_64' }), 'x86_64');
  const listing = disassemble(c.hex);
  const lines = listing.split('\n');
  t.is(lines.length, c.instructions.length);
  t.regex(lines[0]!, /^0000: 0x20 0x00 0x00 0x00000004 {2}ld {2}\[4\] +; arch$/);
  t.regex(listing, /jeq 0xc000003e .*; AUDIT_ARCH x86_64/);
  t.regex(listing, /jeq 0x40000003 .*; AUDIT_ARCH x86/);
  t.regex(listing, /jeq 0x000000fa .*; keyctl/);
  t.regex(listing, /ld {2}\[16\] +; args\[0\]\.lo/);
  t.regex(listing, /ret ERRNO\(1 EPERM\)/);
  t.regex(listing, /ret ERRNO\(38 ENOSYS\)/);
  t.regex(listing, /ret KILL_PROCESS/);
  t.regex(listing, /ret ALLOW/);
  t.is(disassemble(c.instructions), listing);
});
