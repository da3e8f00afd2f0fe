/**
 * nook's default seccomp profile: a deny-list. Everything is allowed except
 * the calls below. Docker and podman ship allow-lists instead (~350 calls
 * named, everything else EPERM); nook denies by name because in a rootless
 * container the kernel already refuses what needs real privilege (the
 * container's capabilities only count inside its user namespace), so the
 * filter's job is narrower: shrink the kernel attack surface that
 * unprivileged code can reach, and turn off the few calls that are not
 * namespaced at all. A deny-list also never breaks a program because it uses
 * a system call newer than the profile.
 *
 * As in Docker's profile, a denial guarded by a capability is lifted when the
 * container's bounding set holds it (`--cap-add SYS_ADMIN` allows mount(2),
 * unshare(2) with namespace flags, ...). docs/security.md explains each entry
 * for users.
 */
import { hostSeccompArch, type SeccompArch } from './arch.js';
import { ENOSYS, EPERM } from './oci.js';
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall } from './oci.js';

export const EAFNOSUPPORT = 97;

export interface Denial {
  names: string[];
  errno: number;
  /** Lifted when the bounding set holds any of these. */
  unlessCapability?: string[];
  /** Each entry is one rule (any of them matching denies); absent: always. */
  when?: LinuxSeccompArg[][];
  /** One line for docs/security.md and `nook info`. */
  why: string;
}

const bit = (index: number, flag: number): LinuxSeccompArg[] => [{ index, op: 'SCMP_CMP_MASKED_EQ', value: flag, valueTwo: flag }];

/** CLONE_NEW* flags, from <linux/sched.h>. clone(2) cannot take CLONE_NEWTIME (0x80 is part of its exit signal byte there). */
const CLONE_NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};
const CLONE_NEWTIME = 0x00000080;
const AF_VSOCK = 40;
/** personality(2) flag that maps page zero at exec: turns kernel NULL dereferences into exploits. */
const MMAP_PAGE_ZERO = 0x0100000;

export const DEFAULT_DENIALS: readonly Denial[] = [
  { names: ['kexec_load', 'kexec_file_load'], errno: EPERM, why: 'loading a new kernel is never a container\'s business' },
  { names: ['reboot'], errno: EPERM, unlessCapability: ['CAP_SYS_BOOT'], why: 'in a pid namespace it only kills the container, but needs CAP_SYS_BOOT (as Docker)' },
  { names: ['init_module', 'finit_module', 'delete_module'], errno: EPERM, unlessCapability: ['CAP_SYS_MODULE'], why: 'kernel modules are host-wide' },
  { names: ['create_module', 'get_kernel_syms', 'query_module', 'uselib', 'nfsservctl', '_sysctl', 'vm86', 'vm86old'], errno: EPERM, why: 'obsolete or legacy interfaces with a history of bugs, unused by current software' },
  { names: ['keyctl', 'add_key', 'request_key'], errno: EPERM, why: 'keyrings are not namespaced and nook gives a container no session keyring of its own, so the host user\'s keys would be reachable (as Docker; podman allows keyctl because it creates one keyring per container)' },
  { names: ['bpf'], errno: EPERM, unlessCapability: ['CAP_SYS_ADMIN', 'CAP_BPF'], why: 'eBPF is a large kernel attack surface (as Docker)' },
  { names: ['perf_event_open'], errno: EPERM, unlessCapability: ['CAP_SYS_ADMIN', 'CAP_PERFMON'], why: 'performance counters observe the whole host and have had many bugs (as Docker)' },
  { names: ['userfaultfd'], errno: EPERM, why: 'makes kernel race conditions reliably exploitable; almost nothing needs it (as Docker)' },
  { names: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'], errno: ENOSYS, why: 'io_uring bypasses seccomp for the calls it performs and is a frequent source of kernel exploits; ENOSYS makes libraries fall back to epoll (as Docker 25+, podman)' },
  { names: ['swapon', 'swapoff'], errno: EPERM, why: 'swap is host-wide' },
  { names: ['acct'], errno: EPERM, unlessCapability: ['CAP_SYS_PACCT'], why: 'process accounting is host-wide' },
  { names: ['lookup_dcookie', 'quotactl', 'quotactl_fd', 'fanotify_init'], errno: EPERM, unlessCapability: ['CAP_SYS_ADMIN'], why: 'host-wide administration interfaces (as Docker)' },
  {
    names: ['mount', 'umount', 'umount2', 'pivot_root', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'open_tree_attr', 'mount_setattr'],
    errno: EPERM,
    unlessCapability: ['CAP_SYS_ADMIN'],
    why: 'the container\'s mounts are set up before it starts; the kernel would refuse without CAP_SYS_ADMIN anyway (as Docker)',
  },
  { names: ['setns'], errno: EPERM, unlessCapability: ['CAP_SYS_ADMIN'], why: 'joining other namespaces needs CAP_SYS_ADMIN (as Docker)' },
  {
    names: ['unshare'],
    errno: EPERM,
    unlessCapability: ['CAP_SYS_ADMIN'],
    when: [...Object.values(CLONE_NAMESPACE_FLAGS), CLONE_NEWTIME].map((flag) => bit(0, flag)),
    why: 'a nested user namespace hands full capabilities over new namespaces to unprivileged code, the entry point of most kernel exploits; other unshare flags stay allowed',
  },
  {
    names: ['clone'],
    errno: EPERM,
    unlessCapability: ['CAP_SYS_ADMIN'],
    when: Object.values(CLONE_NAMESPACE_FLAGS).map((flag) => bit(0, flag)),
    why: 'the same as unshare, for clone(2) with CLONE_NEW* flags (as Docker)',
  },
  { names: ['clone3'], errno: ENOSYS, unlessCapability: ['CAP_SYS_ADMIN'], why: 'clone3 passes its flags in memory, where seccomp cannot look; ENOSYS makes glibc fall back to clone(2), which is checked (as Docker)' },
  { names: ['open_by_handle_at'], errno: EPERM, unlessCapability: ['CAP_DAC_READ_SEARCH'], why: 'opens files by handle, bypassing the mount tree: the "shocker" container escape (as Docker)' },
  { names: ['kcmp'], errno: EPERM, unlessCapability: ['CAP_SYS_PTRACE'], why: 'compares kernel object addresses, an information leak (as Docker); ptrace itself stays allowed (safe since Linux 4.8)' },
  { names: ['iopl', 'ioperm'], errno: EPERM, unlessCapability: ['CAP_SYS_RAWIO'], why: 'raw I/O port access' },
  { names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'], errno: EPERM, unlessCapability: ['CAP_SYS_TIME'], why: 'the system clock is not namespaced; reading it (and adjtimex queries) stays allowed' },
  { names: ['syslog'], errno: EPERM, unlessCapability: ['CAP_SYSLOG', 'CAP_SYS_ADMIN'], why: 'the kernel log is the host\'s and leaks kernel addresses (as Docker)' },
  { names: ['vhangup'], errno: EPERM, unlessCapability: ['CAP_SYS_TTY_CONFIG'], why: 'hangs up the controlling terminal (as Docker)' },
  {
    names: ['socket'],
    errno: EAFNOSUPPORT,
    // Only the low 32 bits: the kernel takes an int, so upper bits must not sneak past the check.
    when: [[{ index: 0, op: 'SCMP_CMP_MASKED_EQ', value: 0xffffffff, valueTwo: AF_VSOCK }]],
    why: 'vsock is not network-namespaced: it reaches the hypervisor and host services whatever --network says (as Docker)',
  },
];

/** personality(2): allowed, but not with MMAP_PAGE_ZERO; 0xffffffff is the query and must stay allowed. */
const PERSONALITY_RULES: LinuxSyscall[] = [
  { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, op: 'SCMP_CMP_MASKED_EQ', value: 0xffffffff, valueTwo: 0xffffffff }] },
  { names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: bit(0, MMAP_PAGE_ZERO) },
];

export interface DefaultProfileOptions {
  /** The container's bounding set (CAP_* names): denials guarded by one of them are lifted. */
  capabilities?: readonly string[];
  /** Host architecture: decides which ABIs the profile lists (x86_64 also lets i386 binaries run). */
  arch?: SeccompArch;
}

/** nook's default `linux.seccomp` for a container. */
export function defaultSeccompConfig(options: DefaultProfileOptions = {}): LinuxSeccomp {
  const caps = new Set((options.capabilities ?? []).map((c) => c.toUpperCase().replace(/^(?!CAP_)/, 'CAP_')));
  const syscalls: LinuxSyscall[] = [];
  for (const denial of DEFAULT_DENIALS) {
    if (denial.unlessCapability?.some((c) => caps.has(c))) continue;
    const base = { names: [...denial.names], action: 'SCMP_ACT_ERRNO' as const, errnoRet: denial.errno };
    if (!denial.when) syscalls.push(base);
    else for (const args of denial.when) syscalls.push({ ...base, args: args.map((a) => ({ ...a })) });
  }
  syscalls.push(...PERSONALITY_RULES.map((r) => ({ ...r, names: [...r.names], args: r.args?.map((a) => ({ ...a })) })));
  const arch = options.arch ?? hostSeccompArch();
  const architectures = arch === 'x86_64' || arch === 'x86' ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'] : ['SCMP_ARCH_AARCH64'];
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures, syscalls };
}
