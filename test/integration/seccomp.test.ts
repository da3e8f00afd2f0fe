/**
 * Compiled seccomp filters, run for real: test/fixtures/seccomp-load.c loads
 * the hex the plan would carry (no_new_privs + seccomp(2), unprivileged, as
 * the executor does) and execs test/fixtures/seccomp-probe.c, which makes raw
 * system calls and prints what the kernel answered. Each denial is checked
 * against a run without filter, so that a pass means the filter denied it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { requireHostTool } from '../helpers/host-tools.js';
import { resolveCapabilities } from '../../src/security/capabilities.js';
import { hostSeccompArch } from '../../src/security/seccomp/arch.js';
import { compileSeccomp } from '../../src/security/seccomp/compiler.js';
import { defaultSeccompConfig } from '../../src/security/seccomp/default-profile.js';
import { loadSeccompProfile } from '../../src/security/seccomp/profiles.js';
import type { LinuxSeccomp } from '../../src/security/seccomp/oci.js';
import { syscallTables } from '../../src/security/seccomp/syscall-tables.js';

const fixtures = join(process.cwd(), 'test', 'fixtures');
const work = mkdtempSync(join(tmpdir(), 'nook-seccomp-it-'));
const loader = join(work, 'seccomp-load');
const prober = join(work, 'seccomp-probe');
const arch = hostSeccompArch();

test.before(async () => {
  const cc = requireHostTool('gcc');
  await execa(cc, ['-O1', '-Wall', '-o', loader, join(fixtures, 'seccomp-load.c')]);
  await execa(cc, ['-O1', '-Wall', '-o', prober, join(fixtures, 'seccomp-probe.c')]);
});

test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** Runs a command under the filter (or none); the hex goes through stdin, as large programs would not fit argv comfortably. */
function runFiltered(hex: string | null, command: string[], flags = 0) {
  if (hex === null) return execa(command[0]!, command.slice(1), { reject: false });
  return execa(loader, ['-', String(flags), '--', ...command], { input: hex, reject: false });
}

async function probe(hex: string | null, names: string[]): Promise<Record<string, string>> {
  const result = await runFiltered(hex, [prober, ...names]);
  if (result.exitCode !== 0) throw new Error(`probe failed (${result.exitCode ?? result.signal}): ${result.stderr}`);
  return Object.fromEntries(result.stdout.split('\n').map((line) => line.split('=') as [string, string]));
}

const ROOT_CAPS = resolveCapabilities().bounding;

test('the default profile denies in the kernel what it says, and allows the rest', async (t) => {
  const hex = compileSeccomp(defaultSeccompConfig({ capabilities: ROOT_CAPS, arch }), arch).hex;
  // clone_newuser before unshare_user: once in a new user namespace without maps, nesting another fails anyway.
  const names = ['getpid', 'keyctl', 'add_key', 'bpf', 'perf_event_open', 'userfaultfd', 'clone_newuser', 'unshare_user', 'unshare_files', 'clone_fork', 'clone3', 'io_uring_setup', 'personality_query', 'personality_linux32', 'personality_pagezero', 'socket_inet', 'socket_vsock', 'socket_vsock_high', 'getpriority_process'];
  const free = await probe(null, names);
  const filtered = await probe(hex, names);
  t.log(Object.entries(filtered).map(([k, v]) => `${k}=${v}${free[k] !== v ? ` (unfiltered ${free[k]})` : ''}`).join(' '));

  // Calls that work without the filter and are denied with it: the filter did this.
  for (const name of ['keyctl', 'add_key', 'personality_pagezero']) {
    t.is(free[name], 'OK', `${name} works without a filter`);
    t.is(filtered[name], 'EPERM', name);
  }
  t.is(free.unshare_user, 'OK', 'unprivileged user namespaces are available on this host');
  t.is(filtered.unshare_user, 'EPERM');
  t.is(free.clone_newuser, 'OK');
  t.is(filtered.clone_newuser, 'EPERM');
  for (const name of ['bpf', 'perf_event_open', 'userfaultfd']) t.is(filtered[name], 'EPERM', name);
  t.is(filtered.clone3, 'ENOSYS');
  t.is(filtered.io_uring_setup, 'ENOSYS');
  t.is(filtered.socket_vsock, 'EAFNOSUPPORT');
  t.is(filtered.socket_vsock_high, 'EAFNOSUPPORT');
  for (const name of ['getpid', 'unshare_files', 'clone_fork', 'personality_query', 'personality_linux32', 'socket_inet', 'getpriority_process']) t.is(filtered[name], 'OK', name);
});

test('under the default profile ordinary programs work', async (t) => {
  const hex = compileSeccomp(defaultSeccompConfig({ capabilities: ROOT_CAPS, arch }), arch).hex;
  const busybox = requireHostTool('busybox');
  const shell = await runFiltered(hex, [busybox, 'sh', '-c', 'echo ok; ls / >/dev/null && echo listed; grep "^Seccomp:" /proc/self/status']);
  t.is(shell.exitCode, 0, shell.stderr);
  t.deepEqual(shell.stdout.split('\n').map((l) => l.replace(/\s+/g, ' ')), ['ok', 'listed', 'Seccomp: 2']);
  const ls = await runFiltered(hex, ['ls', '-l', '/']);
  t.is(ls.exitCode, 0, ls.stderr);
  // Node uses threads, io_uring (libuv falls back on ENOSYS) and clone3 (glibc falls back to clone).
  const node = await runFiltered(hex, [process.execPath, '-e', "require('fs').readFile('/etc/hostname', (e) => { if (e) throw e; console.log('node ok'); })"]);
  t.is(node.exitCode, 0, node.stderr);
  t.is(node.stdout, 'node ok');
});

test('x32 system calls get ENOSYS on x86_64', async (t) => {
  if (arch !== 'x86_64') return t.pass();
  const hex = compileSeccomp(defaultSeccompConfig({ arch }), arch).hex;
  t.is((await probe(hex, ['x32_getpid'])).x32_getpid, 'ENOSYS');
});

test('CAP_SYS_ADMIN in the bounding set lifts the namespace denials', async (t) => {
  const caps = resolveCapabilities({ add: ['SYS_ADMIN'] }).bounding;
  const hex = compileSeccomp(defaultSeccompConfig({ capabilities: caps, arch }), arch).hex;
  const result = await probe(hex, ['clone_newuser', 'unshare_user', 'keyctl']);
  t.is(result.clone_newuser, 'OK');
  t.is(result.unshare_user, 'OK');
  t.is(result.keyctl, 'EPERM', 'keyctl stays denied');
});

test('a Docker-format profile with argument filters and capability conditions', async (t) => {
  const profile = {
    defaultAction: 'SCMP_ACT_ALLOW',
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    ],
    syscalls: [
      { names: ['getpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
      { names: ['setpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{ index: 2, value: 10, op: 'SCMP_CMP_GT' }] },
      { names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 8, valueTwo: 8, op: 'SCMP_CMP_MASKED_EQ' }, { index: 0, value: 4294967295, op: 'SCMP_CMP_NE' }] },
      { names: ['keyctl'], action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_SYS_ADMIN'] } },
      { names: ['getppid'], action: 'SCMP_ACT_KILL_PROCESS', includes: { arches: ['amd64', 'arm64'] } },
    ],
  };
  const path = join(work, 'profile.json');
  writeFileSync(path, JSON.stringify(profile, null, 2));
  const names = ['getpriority_process', 'getpriority_user', 'setpriority_5', 'setpriority_15', 'personality_query', 'keyctl'];

  const plain = compileSeccomp(await loadSeccompProfile(path, { capabilities: ROOT_CAPS, arch }), arch).hex;
  const free = await probe(null, names);
  const filtered = await probe(plain, names);
  t.is(free.getpriority_user, 'OK');
  t.is(filtered.getpriority_process, 'OK');
  t.is(filtered.getpriority_user, 'EACCES');
  t.is(filtered.setpriority_5, 'OK');
  t.is(free.setpriority_15, 'OK');
  t.is(filtered.setpriority_15, 'EINVAL');
  // Two comparisons of one argument: either denies (runc's rule), so even the query fails here.
  t.is(filtered.personality_query, 'EPERM');
  t.is(filtered.keyctl, 'EPERM');

  const admin = compileSeccomp(await loadSeccompProfile(path, { capabilities: [...ROOT_CAPS, 'CAP_SYS_ADMIN'], arch }), arch).hex;
  t.is((await probe(admin, ['keyctl'])).keyctl, 'OK', 'excludes.caps dropped the rule');

  const killed = await runFiltered(plain, [prober, 'getpid', 'getppid', 'getpid']);
  t.is(killed.signal, 'SIGSYS');
  t.is(killed.stdout, 'getpid=OK');
});

test('a Docker-sized allow-list with long jumps runs real programs', async (t) => {
  const names = Object.keys(syscallTables[arch]);
  const config: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    syscalls: [
      { names: names.filter((n) => !['keyctl', 'add_key', 'socket', 'setpriority'].includes(n)), action: 'SCMP_ACT_ALLOW' },
      { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
      { names: ['setpriority'], action: 'SCMP_ACT_ALLOW', args: [{ index: 2, value: 10, op: 'SCMP_CMP_LE' }] },
    ],
  };
  const compiled = compileSeccomp(config, arch);
  t.true(compiled.instructions.some((i) => i.code === 0x05), 'the program has ja trampolines');
  t.log(`${compiled.instructions.length} instructions for ${names.length} names`);
  const result = await probe(compiled.hex, ['getpid', 'keyctl', 'add_key', 'socket_inet', 'socket_vsock', 'setpriority_5', 'setpriority_15', 'unshare_files']);
  t.deepEqual(result, { getpid: 'OK', keyctl: 'EPERM', add_key: 'EPERM', socket_inet: 'OK', socket_vsock: 'EPERM', setpriority_5: 'OK', setpriority_15: 'EPERM', unshare_files: 'OK' });
  const shell = await runFiltered(compiled.hex, [requireHostTool('busybox'), 'sh', '-c', 'echo ok && ls / >/dev/null && echo listed']);
  t.is(shell.stdout, 'ok\nlisted', shell.stderr);
});

test('filter flags reach seccomp(2): SECCOMP_FILTER_FLAG_LOG is accepted', async (t) => {
  const compiled = compileSeccomp({ ...defaultSeccompConfig({ arch }), flags: ['SECCOMP_FILTER_FLAG_LOG'] }, arch);
  t.is(compiled.flags, 2);
  const result = await runFiltered(compiled.hex, [prober, 'getpid', 'keyctl'], compiled.flags);
  t.is(result.stdout, 'getpid=OK\nkeyctl=EPERM', result.stderr);
});
