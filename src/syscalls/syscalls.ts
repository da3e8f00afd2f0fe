/**
 * The one door to the kernel for nook's TypeScript side. Only ./libc.ts loads
 * koffi; everything else receives a `Syscalls` so that unit tests can pass the
 * recording fake in ./fake.ts and assert on calls without a kernel.
 *
 * Steps that must run single-threaded (entering namespaces, and everything a
 * container's process does before execve) are not here: they live in the C
 * executor (helpers/nook-exec.c), driven by an ExecutorPlan.
 */
export interface WindowSize {
  rows: number;
  cols: number;
}

export interface StatFs {
  /** f_type magic: 0x6969 NFS, 0x0bd00bd0 Lustre, 0x47504653 GPFS, 0x794c7630 overlayfs, 0x65735546 fuse, 0x01021994 tmpfs, 0xef53 ext4 */
  type: number;
  blockSize: number;
  blocks: bigint;
  blocksFree: bigint;
  blocksAvailable: bigint;
}

export interface Pty {
  /** controlling side, kept by nook */
  master: number;
  /** terminal side, given to the container as stdin/stdout/stderr */
  slave: number;
}

export interface Syscalls {
  openpty(size?: WindowSize): Pty;
  getWindowSize(fd: number): WindowSize | null;
  setWindowSize(fd: number, size: WindowSize): void;
  /** flock(2); returns false instead of throwing when `nonBlocking` and the lock is held. */
  flock(fd: number, operation: 'shared' | 'exclusive' | 'unlock', nonBlocking?: boolean): boolean;
  statfs(path: string): StatFs;
  /** kill(2); returns false for ESRCH (no such process) */
  kill(pid: number, signal: number): boolean;
  umount2(target: string, flags: number): void;
  close(fd: number): void;
  /** mknod(2); `mode` includes the file type bits (S_IFCHR...), `major`/`minor` the device. */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** lsetxattr(2): does not follow a final symlink. */
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** lgetxattr(2); null when the attribute is absent (ENODATA). */
  lgetxattr(path: string, name: string): Buffer | null;
  /** lremovexattr(2); an absent attribute is not an error. */
  lremovexattr(path: string, name: string): void;
  /** pipe2(O_CLOEXEC): [read end, write end]; children get an end only when it is passed explicitly. */
  pipe(): [number, number];
}

export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(`${call}: ${code}`);
    this.name = 'SyscallError';
  }
}

let instance: Promise<Syscalls> | undefined;

/**
 * The production implementation, loading koffi on first use only (~6 ms).
 * The promise itself is cached: two concurrent first calls must not both
 * construct LibcSyscalls (koffi refuses to declare the same struct twice).
 */
export function linuxSyscalls(): Promise<Syscalls> {
  instance ??= import('./libc.js').then(({ LibcSyscalls }) => new LibcSyscalls());
  return instance;
}
