import { SyscallError, type Pty, type StatFs, type Syscalls, type WindowSize } from './syscalls.js';

export interface RecordedCall {
  name: keyof Syscalls;
  args: unknown[];
}

/**
 * A Syscalls that records every call and answers from a script, for fast unit
 * tests (as youki's TestHelperSyscall). `failNext('flock', 'EWOULDBLOCK')`
 * makes the next call of that name throw as the kernel would.
 */
export class RecordingSyscalls implements Syscalls {
  readonly calls: RecordedCall[] = [];
  statfsType = 0xef53;
  alivePids = new Set<number>();
  /** xattrs set through lsetxattr, keyed "path\0name" */
  readonly xattrs = new Map<string, Buffer>();
  private readonly failures = new Map<string, string[]>();
  private nextFd = 100;

  failNext(name: keyof Syscalls, code: string, times = 1): void {
    const list = this.failures.get(name) ?? [];
    for (let i = 0; i < times; i++) list.push(code);
    this.failures.set(name, list);
  }

  private record(name: keyof Syscalls, args: unknown[]): void {
    this.calls.push({ name, args });
    const pending = this.failures.get(name);
    const code = pending?.shift();
    if (code) throw new SyscallError(name, 0, code);
  }

  openpty(size?: WindowSize): Pty {
    this.record('openpty', [size]);
    return { master: this.nextFd++, slave: this.nextFd++ };
  }
  getWindowSize(fd: number): WindowSize | null {
    this.record('getWindowSize', [fd]);
    return { rows: 24, cols: 80 };
  }
  setWindowSize(fd: number, size: WindowSize): void {
    this.record('setWindowSize', [fd, size]);
  }
  flock(fd: number, operation: 'shared' | 'exclusive' | 'unlock', nonBlocking = false): boolean {
    this.record('flock', [fd, operation, nonBlocking]);
    return true;
  }
  statfs(path: string): StatFs {
    this.record('statfs', [path]);
    return { type: this.statfsType, blockSize: 4096, blocks: 1000n, blocksFree: 500n, blocksAvailable: 500n };
  }
  kill(pid: number, signal: number): boolean {
    this.record('kill', [pid, signal]);
    return this.alivePids.has(pid);
  }
  umount2(target: string, flags: number): void {
    this.record('umount2', [target, flags]);
  }
  close(fd: number): void {
    this.record('close', [fd]);
  }
  pipe(): [number, number] {
    this.record('pipe', []);
    return [this.nextFd++, this.nextFd++];
  }
  mknod(path: string, mode: number, major: number, minor: number): void {
    this.record('mknod', [path, mode, major, minor]);
  }
  lsetxattr(path: string, name: string, value: Buffer): void {
    this.record('lsetxattr', [path, name, value]);
    this.xattrs.set(`${path}\0${name}`, value);
  }
  lgetxattr(path: string, name: string): Buffer | null {
    this.record('lgetxattr', [path, name]);
    return this.xattrs.get(`${path}\0${name}`) ?? null;
  }
  lremovexattr(path: string, name: string): void {
    this.record('lremovexattr', [path, name]);
    this.xattrs.delete(`${path}\0${name}`);
  }
}
