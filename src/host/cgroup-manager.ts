/**
 * Which cgroup manager nook uses, and why. Resource limits need cgroup v2 and
 * a subtree the user may write to: systemd hands one out (a transient scope
 * under user@UID.service, with the controllers its `Delegate=` lists) when
 * the user's systemd instance answers; otherwise a writable cgroup of our own
 * can be managed directly (cgroupfs), as inside a container with a delegated
 * cgroup namespace. cgroup v1 has no safe delegation: no limits at all.
 */
import { firstLine } from './userns.js';
import { realHostView, type HostView } from './view.js';

export type CgroupVersion = 'v2' | 'v1-hybrid' | 'v1' | 'none';
export type CgroupManagerName = 'systemd' | 'cgroupfs' | 'none';

/** the controllers a container's limits use (--memory, --pids-limit, --cpus, --device-*-bps, --cpuset-cpus) */
export const wantedControllers = ['cpu', 'cpuset', 'io', 'memory', 'pids'] as const;

export interface SystemdFacts {
  /** systemd is PID 1 (/run/systemd/system exists) */
  pid1: boolean;
  /** the session bus socket, from $DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus or /run/user/UID/bus */
  busPath: string | null;
  /** `systemctl --user` answered, or why not; null when not asked (no systemd, no bus) */
  userManager: { answers: boolean; message: string } | null;
  /** cgroup.controllers of user@UID.service: what systemd delegates to this user */
  delegatedControllers: string[] | null;
  /** /var/lib/systemd/linger/USER exists: the user manager survives logout */
  lingering: boolean;
}

export interface CgroupFacts {
  version: CgroupVersion;
  /** this process's cgroup v2 path (the "0::" line of /proc/self/cgroup) */
  ownPath: string | null;
  /** /sys/fs/cgroup + ownPath, when cgroup v2 */
  ownDir: string | null;
  /** the user may create child cgroups there and enable controllers */
  ownDirWritable: boolean;
  /** cgroup.controllers of ownDir: the controllers children of ownDir can get */
  ownControllers: string[];
  /** cgroup.subtree_control of ownDir: the controllers already enabled for children */
  ownSubtreeControl: string[];
  systemd: SystemdFacts;
}

export interface CgroupManagerChoice {
  manager: CgroupManagerName;
  version: CgroupVersion;
  reason: string;
  /** the controllers containers' limits can use; [] with `none` */
  controllers: string[];
  /** where the cgroupfs manager creates containers' cgroups */
  parentCgroup: string | null;
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

function words(text: string | null): string[] {
  return (text ?? '').split(/\s+/).filter(Boolean);
}

/** The "0::/path" line of /proc/PID/cgroup. */
export function parseOwnCgroup(procSelfCgroup: string | null): string | null {
  for (const line of (procSelfCgroup ?? '').split('\n')) if (line.startsWith('0::')) return line.slice(3).trim() || '/';
  return null;
}

/** `unix:path=/run/user/1000/bus,guid=...` -> /run/user/1000/bus; abstract sockets and tcp buses -> null. */
export function busSocketPath(address: string | undefined): string | null {
  for (const part of (address ?? '').split(';')) {
    const match = /^unix:(?:.*,)?path=([^,]+)/.exec(part);
    if (match) return match[1]!;
  }
  return null;
}

async function readVersion(view: HostView): Promise<CgroupVersion> {
  const root = await view.statfs('/sys/fs/cgroup');
  if (!root) return 'none';
  if (root.type === CGROUP2_SUPER_MAGIC) return 'v2';
  const unified = await view.statfs('/sys/fs/cgroup/unified');
  return unified?.type === CGROUP2_SUPER_MAGIC ? 'v1-hybrid' : 'v1';
}

async function findBus(view: HostView): Promise<string | null> {
  const candidates = [busSocketPath(view.env.DBUS_SESSION_BUS_ADDRESS), view.env.XDG_RUNTIME_DIR ? `${view.env.XDG_RUNTIME_DIR}/bus` : null, `/run/user/${view.uid}/bus`];
  for (const path of candidates) {
    if (!path) continue;
    const info = await view.stat(path);
    if (info && info.type !== 'dir' && info.uid === view.uid) return path;
  }
  return null;
}

export async function readSystemdFacts(view: HostView): Promise<SystemdFacts> {
  const userService = `/sys/fs/cgroup/user.slice/user-${view.uid}.slice/user@${view.uid}.service`;
  const [pid1Dir, busPath, controllers, lingerFile] = await Promise.all([
    view.stat('/run/systemd/system'),
    findBus(view),
    view.readFile(`${userService}/cgroup.controllers`),
    view.userName ? view.stat(`/var/lib/systemd/linger/${view.userName}`) : Promise.resolve(null),
  ]);
  const pid1 = pid1Dir?.type === 'dir';
  let userManager: SystemdFacts['userManager'] = null;
  if (pid1 && busPath) {
    const systemctl = await view.which('systemctl');
    if (!systemctl) userManager = { answers: false, message: 'systemctl is not installed' };
    else {
      const result = await view.run(systemctl, ['--user', 'show', '--property=Version'], { timeoutMs: 3000 });
      userManager = result.exitCode === 0 ? { answers: true, message: result.stdout.trim() } : { answers: false, message: firstLine(result.stderr) || result.failure || `exit status ${result.exitCode}` };
    }
  }
  return { pid1, busPath, userManager, delegatedControllers: controllers === null ? null : words(controllers), lingering: lingerFile !== null };
}

export async function readCgroupFacts(view: HostView): Promise<CgroupFacts> {
  const [version, procSelf, systemd] = await Promise.all([readVersion(view), view.readFile('/proc/self/cgroup'), readSystemdFacts(view)]);
  const base: CgroupFacts = { version, ownPath: null, ownDir: null, ownDirWritable: false, ownControllers: [], ownSubtreeControl: [], systemd };
  if (version !== 'v2') return base;
  const ownPath = parseOwnCgroup(procSelf);
  if (!ownPath) return base;
  const ownDir = ownPath === '/' ? '/sys/fs/cgroup' : `/sys/fs/cgroup${ownPath}`;
  const [dirWritable, procsWritable, subtreeWritable, controllers, subtree] = await Promise.all([
    view.access(ownDir, 'w'),
    view.access(`${ownDir}/cgroup.procs`, 'w'),
    view.access(`${ownDir}/cgroup.subtree_control`, 'w'),
    view.readFile(`${ownDir}/cgroup.controllers`),
    view.readFile(`${ownDir}/cgroup.subtree_control`),
  ]);
  return {
    ...base,
    ownPath,
    ownDir,
    ownDirWritable: dirWritable && procsWritable && subtreeWritable,
    ownControllers: words(controllers),
    ownSubtreeControl: words(subtree),
  };
}

export function systemdUserSessionReachable(facts: CgroupFacts): boolean {
  return facts.systemd.userManager?.answers === true;
}

function listed(controllers: string[]): string {
  return controllers.length ? controllers.join(' ') : 'none';
}

export function decideCgroupManager(facts: CgroupFacts): CgroupManagerChoice {
  const none = (reason: string): CgroupManagerChoice => ({ manager: 'none', version: facts.version, reason, controllers: [], parentCgroup: null });
  if (facts.version === 'v1-hybrid') return none('cgroup v1 (hybrid): resource limits unavailable; containers run without limits');
  if (facts.version === 'v1') return none('cgroup v1: resource limits unavailable; containers run without limits');
  if (facts.version === 'none') return none('no cgroup filesystem at /sys/fs/cgroup: containers run without limits');

  if (systemdUserSessionReachable(facts)) {
    const controllers = facts.systemd.delegatedControllers ?? facts.ownControllers;
    return {
      manager: 'systemd',
      version: 'v2',
      reason: `cgroup v2 and the systemd user session answers at ${facts.systemd.busPath}; delegated controllers: ${listed(controllers)}`,
      controllers,
      parentCgroup: null,
    };
  }
  const noSession = facts.systemd.pid1
    ? `no systemd user session (${facts.systemd.userManager?.message ?? (facts.systemd.busPath ? 'not asked' : 'no session bus socket')})`
    : 'systemd is not PID 1';
  if (facts.ownDirWritable && facts.ownDir && (facts.ownControllers.length > 0 || facts.ownSubtreeControl.length > 0)) {
    const controllers = facts.ownSubtreeControl.length > 0 ? facts.ownSubtreeControl : facts.ownControllers;
    return {
      manager: 'cgroupfs',
      version: 'v2',
      reason: `cgroup v2, ${noSession}, and this process's cgroup ${facts.ownPath} is writable; controllers: ${listed(controllers)}`,
      controllers,
      parentCgroup: facts.ownDir,
    };
  }
  return none(`cgroup v2 but ${noSession} and no writable delegated cgroup (${facts.ownPath ?? 'unknown'}): containers run without limits`);
}

export async function chooseCgroupManager(options: { view?: HostView } = {}): Promise<CgroupManagerChoice> {
  return decideCgroupManager(await readCgroupFacts(options.view ?? realHostView()));
}
