import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { SyscallError, type Pty, type StatFs, type Syscalls, type WindowSize } from './syscalls.js';

// koffi is CommonJS with a native addon; load it synchronously once.
const require = createRequire(import.meta.url);
const koffi = loadKoffi();

/**
 * koffi's entry point also loads https, zlib and crypto (for its tool that
 * downloads prebuilt addons): ~8 ms on every container start. The addon it
 * wraps exports the same functions, so it is loaded directly from where koffi
 * 2 ships it, and through the entry point when it is not there (another
 * layout, musl, a koffi that builds from source).
 */
function loadKoffi(): typeof import('koffi') {
  const arch = process.arch === 'arm' ? 'armhf' : process.arch;
  try {
    const addon = join(dirname(require.resolve('koffi')), 'build', 'koffi', `${process.platform}_${arch}`, 'koffi.node');
    const native = require(addon) as typeof import('koffi');
    if (typeof native.load === 'function' && typeof native.decode === 'function') return native;
  } catch {
    // fall through to the package's own loader
  }
  return require('koffi') as typeof import('koffi');
}

const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const O_CLOEXEC = 0o2000000;

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));

export class LibcSyscalls implements Syscalls {
  private readonly libc = koffi.load('libc.so.6');
  private readonly winsize = koffi.struct('nook_winsize', { ws_row: 'uint16', ws_col: 'uint16', ws_xpixel: 'uint16', ws_ypixel: 'uint16' });
  private readonly statfsStruct = koffi.struct('nook_statfs', {
    f_type: 'long',
    f_bsize: 'long',
    f_blocks: 'uint64',
    f_bfree: 'uint64',
    f_bavail: 'uint64',
    f_files: 'uint64',
    f_ffree: 'uint64',
    f_fsid: koffi.array('int', 2),
    f_namelen: 'long',
    f_frsize: 'long',
    f_flags: 'long',
    f_spare: koffi.array('long', 4),
  });
  private readonly errnoLocation = this.libc.func('int *__errno_location()');
  private readonly fnOpenpty = this.libc.func('int openpty(_Out_ int *amaster, _Out_ int *aslave, void *name, void *termp, nook_winsize *winp)');
  private readonly fnIoctlGet = this.libc.func('int ioctl(int fd, unsigned long req, _Out_ nook_winsize *ws)');
  private readonly fnIoctlSet = this.libc.func('ioctl', 'int', ['int', 'unsigned long', koffi.pointer(this.winsize)]);
  private readonly fnFlock = this.libc.func('int flock(int fd, int op)');
  private readonly fnStatfs = this.libc.func('int statfs(const char *path, _Out_ nook_statfs *buf)');
  private readonly fnKill = this.libc.func('int kill(int pid, int sig)');
  private readonly fnUmount2 = this.libc.func('int umount2(const char *target, int flags)');
  private readonly fnClose = this.libc.func('int close(int fd)');
  private readonly fnPipe2 = this.libc.func('int pipe2(_Out_ int *fds, int flags)');
  private readonly fnMknod = this.libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  private readonly fnLsetxattr = this.libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)');
  private readonly fnLgetxattr = this.libc.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)');
  private readonly fnLremovexattr = this.libc.func('int lremovexattr(const char *path, const char *name)');

  private fail(call: string): never {
    const errno = koffi.decode(this.errnoLocation(), 'int') as number;
    throw new SyscallError(call, errno, errnoNames.get(errno) ?? `errno ${errno}`);
  }

  openpty(size?: WindowSize): Pty {
    const master = [0];
    const slave = [0];
    const ws = size ? { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 } : null;
    if (this.fnOpenpty(master, slave, null, null, ws) < 0) this.fail('openpty');
    return { master: master[0]!, slave: slave[0]! };
  }

  getWindowSize(fd: number): WindowSize | null {
    const ws: Record<string, number> = {};
    if (this.fnIoctlGet(fd, TIOCGWINSZ, ws) < 0) return null;
    return { rows: ws.ws_row ?? 0, cols: ws.ws_col ?? 0 };
  }

  setWindowSize(fd: number, size: WindowSize): void {
    if (this.fnIoctlSet(fd, TIOCSWINSZ, { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 }) < 0) this.fail('ioctl(TIOCSWINSZ)');
  }

  flock(fd: number, operation: 'shared' | 'exclusive' | 'unlock', nonBlocking = false): boolean {
    const op = (operation === 'shared' ? LOCK_SH : operation === 'exclusive' ? LOCK_EX : LOCK_UN) | (nonBlocking ? LOCK_NB : 0);
    if (this.fnFlock(fd, op) === 0) return true;
    const errno = koffi.decode(this.errnoLocation(), 'int') as number;
    if (nonBlocking && errno === osConstants.errno.EWOULDBLOCK) return false;
    return this.fail('flock');
  }

  statfs(path: string): StatFs {
    const buf: Record<string, unknown> = {};
    if (this.fnStatfs(path, buf) < 0) this.fail(`statfs ${path}`);
    return {
      type: Number(buf.f_type) >>> 0,
      blockSize: Number(buf.f_bsize),
      blocks: BigInt(buf.f_blocks as number),
      blocksFree: BigInt(buf.f_bfree as number),
      blocksAvailable: BigInt(buf.f_bavail as number),
    };
  }

  kill(pid: number, signal: number): boolean {
    if (this.fnKill(pid, signal) === 0) return true;
    const errno = koffi.decode(this.errnoLocation(), 'int') as number;
    if (errno === osConstants.errno.ESRCH) return false;
    return this.fail(`kill ${pid}`);
  }

  umount2(target: string, flags: number): void {
    if (this.fnUmount2(target, flags) < 0) this.fail(`umount2 ${target}`);
  }

  close(fd: number): void {
    this.fnClose(fd);
  }

  pipe(): [number, number] {
    const fds = [0, 0];
    if (this.fnPipe2(fds, O_CLOEXEC) < 0) this.fail('pipe2');
    return [fds[0]!, fds[1]!];
  }

  mknod(path: string, mode: number, major: number, minor: number): void {
    // glibc's makedev(): the 64-bit dev_t layout
    const dev = (BigInt(major & 0xfffff000) << 32n) | (BigInt(major & 0xfff) << 8n) | (BigInt(minor & 0xffffff00) << 12n) | BigInt(minor & 0xff);
    if (this.fnMknod(path, mode, dev) < 0) this.fail(`mknod ${path}`);
  }

  lsetxattr(path: string, name: string, value: Buffer): void {
    if (this.fnLsetxattr(path, name, value, value.length, 0) < 0) this.fail(`lsetxattr ${name} ${path}`);
  }

  lgetxattr(path: string, name: string): Buffer | null {
    const buf = Buffer.alloc(65536);
    const n = Number(this.fnLgetxattr(path, name, buf, buf.length));
    if (n >= 0) return buf.subarray(0, n);
    const errno = koffi.decode(this.errnoLocation(), 'int') as number;
    if (errno === osConstants.errno.ENODATA) return null;
    return this.fail(`lgetxattr ${name} ${path}`);
  }

  lremovexattr(path: string, name: string): void {
    if (this.fnLremovexattr(path, name) === 0) return;
    const errno = koffi.decode(this.errnoLocation(), 'int') as number;
    if (errno !== osConstants.errno.ENODATA) this.fail(`lremovexattr ${name} ${path}`);
  }
}
