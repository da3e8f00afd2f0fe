/**
 * An imaginary machine for the host checks: a healthy Debian 12 with cgroup v2,
 * systemd, subordinate ids and every tool, which each test then breaks in one
 * way. Commands are answered by functions keyed by their absolute path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NookPaths } from '../../src/lib/paths.js';
import type { StatFs } from '../../src/syscalls/syscalls.js';
import type { CommandResult, DeviceAccess, FileInfo, HostView } from '../../src/host/view.js';
import { HostFacts } from '../../src/host/facts.js';
import type { Check, CheckResult } from '../../src/host/check.js';

export const EXT4 = 0xef53;
export const NFS = 0x6969;
export const TMPFS = 0x01021994;
export const CGROUP2 = 0x63677270;

export type CommandHandler = (args: string[]) => CommandResult;

export interface FakeMachine {
  uid: number;
  gid: number;
  userName: string | null;
  env: Record<string, string | undefined>;
  kernelRelease: string;
  files: Map<string, string>;
  /** stat answers beyond `files` (which stat as root-owned 0644 regular files) */
  stats: Map<string, FileInfo>;
  writable: Set<string>;
  notExecutable: Set<string>;
  devices: Map<string, DeviceAccess>;
  /** statfs type by path; a path not listed has no statfs (does not exist) */
  filesystems: Map<string, number>;
  /** command handlers by absolute path; `which` finds them by basename */
  commands: Map<string, CommandHandler>;
  /** every run, for assertions */
  runs: { file: string; args: string[] }[];
}

export const done = (stdout = '', exitCode = 0, stderr = ''): CommandResult => ({ exitCode, stdout, stderr });

const userService = (uid: number) => `/sys/fs/cgroup/user.slice/user-${uid}.slice/user@${uid}.service`;

/** Removes every directory fakePaths() made in this test file (call from test.after.always). */
export function removeFakePaths(): void {
  for (const base of createdBases.splice(0)) rmSync(base, { recursive: true, force: true });
}

/** The storage root and run root of the fake user, inside a real temporary directory (the overlay probe uses real files). */
const createdBases: string[] = [];

export function fakePaths(): NookPaths {
  const base = mkdtempSync(join(tmpdir(), 'nook-host-test-'));
  createdBases.push(base);
  return { root: join(base, 'data', 'nook'), runRoot: join(base, 'run', 'nook') };
}

export function healthyMachine(paths: NookPaths): FakeMachine {
  const uid = 1000;
  const own = `${userService(uid)}/app.slice/nook.scope`;
  const machine: FakeMachine = {
    uid,
    gid: 1000,
    userName: 'alice',
    env: { HOME: '/home/alice', XDG_RUNTIME_DIR: `/run/user/${uid}`, DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${uid}/bus`, PATH: '/usr/local/bin:/usr/bin:/bin' },
    kernelRelease: '6.8.0-31-generic',
    files: new Map([
      ['/etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'],
      ['/etc/nsswitch.conf', 'passwd: files\ngroup: files\n'],
      ['/etc/subuid', 'alice:100000:65536\nbob:165536:65536\n'],
      ['/etc/subgid', 'alice:100000:65536\nbob:165536:65536\n'],
      ['/proc/sys/user/max_user_namespaces', '63432\n'],
      ['/proc/self/cgroup', `0::${own.slice('/sys/fs/cgroup'.length)}\n`],
      [`${userService(uid)}/cgroup.controllers`, 'cpuset cpu io memory pids\n'],
      [`${own}/cgroup.controllers`, 'cpuset cpu io memory pids\n'],
      [`${own}/cgroup.subtree_control`, '\n'],
    ]),
    stats: new Map<string, FileInfo>([
      ['/usr/bin/newuidmap', { type: 'file', mode: 0o4755, uid: 0, gid: 0 }],
      ['/usr/bin/newgidmap', { type: 'file', mode: 0o4755, uid: 0, gid: 0 }],
      ['/run/systemd/system', { type: 'dir', mode: 0o755, uid: 0, gid: 0 }],
      [`/run/user/${uid}`, { type: 'dir', mode: 0o700, uid, gid: 1000 }],
      [`/run/user/${uid}/bus`, { type: 'other', mode: 0o666, uid, gid: 1000 }],
      ['/var/lib/systemd/linger/alice', { type: 'file', mode: 0o644, uid: 0, gid: 0 }],
    ]),
    writable: new Set([paths.root, paths.runRoot, own, `${own}/cgroup.procs`, `${own}/cgroup.subtree_control`]),
    notExecutable: new Set(),
    devices: new Map([
      ['/dev/fuse', { usable: true }],
      ['/dev/net/tun', { usable: true }],
    ]),
    filesystems: new Map([
      ['/', EXT4],
      [paths.root, EXT4],
      ['/sys/fs/cgroup', CGROUP2],
    ]),
    commands: new Map<string, CommandHandler>([
      ['/usr/bin/unshare', (args) => (args.includes('sh') ? done('nook-probe:userns\nnook-probe:mounted\nnook-probe:whiteouts\n') : args[0] === '--version' ? done('unshare from util-linux 2.39.3\n') : done())],
      ['/usr/bin/newuidmap', () => done('', 1, 'usage: newuidmap <pid> <uid> <loweruid> <count>\n')],
      ['/usr/bin/newgidmap', () => done('', 1, 'usage: newgidmap <pid> <gid> <lowergid> <count>\n')],
      ['/usr/bin/slirp4netns', () => done('slirp4netns version 1.2.0\ncommit: 656041d\n')],
      ['/usr/bin/fuse-overlayfs', () => done('fuse-overlayfs: version 1.10\n', 0, 'fusermount3 version: 3.14.0\n')],
      ['/usr/bin/systemctl', () => done('Version=252.22-1~deb12u1\n')],
      ['/usr/sbin/getcap', () => done('')],
      // with nsswitch's files backend getsubids answers from the same files
      ['/usr/bin/getsubids', (args) => getsubidsFromFiles(machine, args)],
      ['/usr/bin/dpkg-query', (args) => (args[0] === '-S' ? done(`uidmap: ${args[1]}\n`) : done('1:4.13+dfsg1-1'))],
    ]),
    runs: [],
  };
  return machine;
}

function getsubidsFromFiles(machine: FakeMachine, args: string[]): CommandResult {
  const group = args[0] === '-g';
  const user = args[group ? 1 : 0]!;
  const lines = (machine.files.get(group ? '/etc/subgid' : '/etc/subuid') ?? '').split('\n').filter((l) => l.startsWith(`${user}:`));
  if (lines.length === 0) return done('', 1, 'Error fetching ranges\n');
  return done(lines.map((l, i) => `${i}: ${user} ${l.split(':')[1]} ${l.split(':')[2]}`).join('\n') + '\n');
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function fakeView(machine: FakeMachine): HostView {
  const view: HostView = {
    uid: machine.uid,
    gid: machine.gid,
    userName: machine.userName,
    env: machine.env,
    kernelRelease: machine.kernelRelease,
    async readFile(path) {
      return machine.files.get(path) ?? null;
    },
    async stat(path) {
      const explicit = machine.stats.get(path);
      if (explicit) return explicit;
      if (machine.files.has(path)) return { type: 'file', mode: 0o644, uid: 0, gid: 0 };
      if (machine.commands.has(path)) return { type: 'file', mode: 0o755, uid: 0, gid: 0 };
      return null;
    },
    async access(path, mode) {
      if (mode === 'w') return machine.writable.has(path);
      if (mode === 'x') return machine.commands.has(path) && !machine.notExecutable.has(path);
      return machine.files.has(path);
    },
    async openDevice(path) {
      return machine.devices.get(path) ?? { usable: false, code: 'ENOENT' };
    },
    async statfs(path): Promise<StatFs | null> {
      const type = machine.filesystems.get(path);
      return type === undefined ? null : { type, blockSize: 4096, blocks: 1000n, blocksFree: 500n, blocksAvailable: 500n };
    },
    async run(file, args) {
      machine.runs.push({ file, args });
      const handler = machine.commands.get(file);
      if (!handler) return { exitCode: null, stdout: '', stderr: '', failure: 'ENOENT' };
      return handler(args);
    },
    async which(name) {
      for (const path of machine.commands.keys()) if (basename(path) === name) return path;
      return null;
    },
  };
  return view;
}

/** Removes a tool from the machine. */
export function uninstall(machine: FakeMachine, name: string): void {
  for (const path of [...machine.commands.keys()]) if (basename(path) === name) machine.commands.delete(path);
  for (const path of [...machine.stats.keys()]) if (basename(path) === name) machine.stats.delete(path);
}


export const fakeExecutor = '/opt/nook/dist/helpers/nook-exec';

/** Runs one check against the machine; `refreshProbes` as doctor does. */
export async function runCheck(check: Check, machine: FakeMachine, paths: NookPaths): Promise<CheckResult | null> {
  return check(new HostFacts(fakeView(machine), paths, { refreshProbes: true, executorPath: fakeExecutor }));
}
