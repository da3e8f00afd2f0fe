/**
 * What the host checks may look at, behind one interface: files, stat, device
 * nodes, statfs, external commands, the environment and who we are. Production
 * code passes `realHostView()`; unit tests pass a fake that describes an
 * imaginary machine (an Ubuntu 24.04 with the AppArmor restriction, an NFS
 * home, cgroup v1...) so every branch of every check runs without one.
 */
import { constants as fsConstants } from 'node:fs';
// Synchronous calls behind the async interface: these are small reads on
// `nook run`'s start path, where Node's thread pool (started by the first
// asynchronous file operation) and a round trip per call cost more than the reads.
import { accessSync, closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { release, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import type { StatFs } from '../syscalls/syscalls.js';
import { errnoCode } from '../lib/errors.js';

export interface FileInfo {
  type: 'file' | 'dir' | 'char' | 'block' | 'link' | 'other';
  /** permission bits including setuid/setgid/sticky (st_mode & 0o7777) */
  mode: number;
  uid: number;
  gid: number;
}

export interface CommandResult {
  /** null when the command could not be started or was killed (timeout) */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** why it did not run to completion: "ENOENT", "timed out"... */
  failure?: string;
}

export type DeviceAccess = { usable: true } | { usable: false; code: string };

export interface HostView {
  readonly uid: number;
  readonly gid: number;
  /** the login name of `uid`, null when the passwd database does not know it */
  readonly userName: string | null;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** uname -r */
  readonly kernelRelease: string;
  /** the whole file, or null when it is missing or unreadable */
  readFile(path: string): Promise<string | null>;
  /** lstat-free: follows symlinks; null when missing */
  stat(path: string): Promise<FileInfo | null>;
  /** access(2) as this process */
  access(path: string, mode: 'r' | 'w' | 'x'): Promise<boolean>;
  /** open(O_RDWR) and close: the only honest test that a device node can be used */
  openDevice(path: string): Promise<DeviceAccess>;
  /** statfs(2), or null when the path does not exist */
  statfs(path: string): Promise<StatFs | null>;
  /** runs a program without a shell; never throws */
  run(file: string, args: string[], options?: { timeoutMs?: number }): Promise<CommandResult>;
  /** absolute path of an executable found in PATH or the sbin directories, or null */
  which(name: string): Promise<string | null>;
}

/** Tools such as newuidmap live in /usr/sbin on some distributions, which a user's PATH may lack. */
const extraSearchDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function fileType(s: { isFile(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSymbolicLink(): boolean }): FileInfo['type'] {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isCharacterDevice()) return 'char';
  if (s.isBlockDevice()) return 'block';
  if (s.isSymbolicLink()) return 'link';
  return 'other';
}

function currentUserName(uid: number, env: NodeJS.ProcessEnv): string | null {
  try {
    return userInfo().username;
  } catch {
    // uid without a passwd entry (containers, some CI): LOGNAME is the next best thing
    return env.LOGNAME ?? env.USER ?? (uid === 0 ? 'root' : null);
  }
}

export function realHostView(env: NodeJS.ProcessEnv = process.env): HostView {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const modeBits = { r: fsConstants.R_OK, w: fsConstants.W_OK, x: fsConstants.X_OK } as const;

  const view: HostView = {
    uid,
    gid,
    userName: currentUserName(uid, env),
    env,
    kernelRelease: release(),
    async readFile(path) {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return null;
      }
    },
    async stat(path) {
      try {
        const s = statSync(path);
        return { type: fileType(s), mode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
      } catch {
        return null;
      }
    },
    async access(path, mode) {
      try {
        accessSync(path, modeBits[mode]);
        return true;
      } catch {
        return false;
      }
    },
    async openDevice(path) {
      try {
        closeSync(openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK));
        return { usable: true };
      } catch (error) {
        return { usable: false, code: errnoCode(error) ?? String(error) };
      }
    },
    async statfs(path) {
      const { linuxSyscalls } = await import('../syscalls/syscalls.js');
      try {
        return (await linuxSyscalls()).statfs(path);
      } catch {
        return null;
      }
    },
    async run(file, args, options = {}) {
      const { execa } = await import('execa');
      try {
        const result = await execa(file, args, {
          reject: false,
          timeout: options.timeoutMs ?? 3000,
          stdin: 'ignore',
          // a localized message would defeat the parsing of some outputs
          env: { LC_ALL: 'C' },
          encoding: 'utf8',
        });
        const failure = result.timedOut ? 'timed out' : result.failed && result.exitCode === undefined ? (result.code ?? result.shortMessage) : undefined;
        return {
          exitCode: result.exitCode ?? null,
          stdout: String(result.stdout ?? ''),
          stderr: String(result.stderr ?? ''),
          ...(failure ? { failure } : {}),
        };
      } catch (error) {
        return { exitCode: null, stdout: '', stderr: '', failure: errnoCode(error) ?? String(error) };
      }
    },
    async which(name) {
      if (name.includes('/')) return (await view.access(name, 'x')) ? name : null;
      const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/')), ...extraSearchDirs];
      for (const dir of new Set(dirs)) {
        const candidate = join(dir, name);
        const info = await view.stat(candidate);
        if (info?.type === 'file' && (await view.access(candidate, 'x'))) return candidate;
      }
      return null;
    },
  };
  return view;
}
