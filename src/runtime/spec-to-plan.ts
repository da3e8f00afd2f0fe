/**
 * The low-level half of nook: an OCI runtime spec (config.json) becomes an
 * ExecutorPlan. `nook run` and the OCI runtime CLI both come through here, so
 * a container started either way is built by the same steps.
 *
 * Order of operations follows runc's: make the mount tree private, mount the
 * rootfs (storage driver), bind it onto itself so it is a mount point, the
 * spec's mounts inside it, devices bound from the host (no mknod without
 * root), symlinks in /dev, hostname, pivot_root, masked and read-only paths,
 * then the process settings.
 */
import { NookError } from '../lib/errors.js';
import { MS, MNT_DETACH, parseMountOptions } from './mountflags.js';
import type { CapabilitySets, ExecutorPlan, MonitorPlan, NamespacePlan, PlanOp, Rlimit, UserNamespacePlan } from './plan.js';
import type { OciMount, OciSpec } from './spec.js';

export interface PlanContext {
  /** Ops that make spec.root.path a mounted rootfs (from the storage driver); run before the pid namespace. */
  rootfsOps: PlanOp[];
  /** newuidmap/newgidmap, or null where the mapping is the user's own id only. */
  uidHelper: string | null;
  gidHelper: string | null;
  capabilities: CapabilitySets | null;
  seccompFilter: string | null;
  monitor: MonitorPlan;
  trace: boolean;
  /** Set by specToPlan: whether the container gets a network namespace of its own. */
  newNetworkNamespace?: boolean;
  /** Host paths whose type (file or directory) decides how they are bound; injectable for tests. */
  isDirectory: (hostPath: string) => boolean;
}

const NAMESPACE_NAMES: Record<string, NamespacePlan['type'] | 'user' | undefined> = {
  pid: 'pid',
  network: 'net',
  mount: 'mnt',
  ipc: 'ipc',
  uts: 'uts',
  cgroup: 'cgroup',
  user: 'user',
};

/** Host devices a container gets; bound, since mknod needs real root. */
export const DEFAULT_DEVICES = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty'];

const DEV_SYMLINKS: [string, string][] = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
  ['/proc/kcore', '/dev/core'],
];

const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

export function rlimitNumber(name: string): number {
  const value = RLIMITS[name.toUpperCase()] ?? RLIMITS[`RLIMIT_${name.toUpperCase()}`];
  if (value === undefined) throw new NookError(`unknown rlimit "${name}" (known: ${Object.keys(RLIMITS).map((k) => k.slice(7).toLowerCase()).join(', ')})`);
  return value;
}

export function specToPlan(spec: OciSpec, context: PlanContext): ExecutorPlan {
  const process = spec.process;
  if (!process) throw new NookError('config.json has no "process": nothing to run');
  if (!spec.root?.path) throw new NookError('config.json has no "root.path"');
  if (!process.args?.length) throw new NookError('no command given and the image has no Cmd or Entrypoint');
  const rootPath = spec.root.path;
  const linux = spec.linux ?? {};

  let user: UserNamespacePlan = { mode: 'none' };
  const namespaces: NamespacePlan[] = [];
  let newMountNs = false;
  let newPidNs = false;
  for (const ns of linux.namespaces ?? []) {
    const type = NAMESPACE_NAMES[ns.type];
    if (!type) throw new NookError(`namespace type "${ns.type}" is not supported`);
    if (type === 'user') {
      user = ns.path
        ? { mode: 'join', path: ns.path }
        : {
            mode: 'new',
            uidMap: (linux.uidMappings ?? []).map((m) => ({ inside: m.containerID, outside: m.hostID, count: m.size })),
            gidMap: (linux.gidMappings ?? []).map((m) => ({ inside: m.containerID, outside: m.hostID, count: m.size })),
            uidHelper: context.uidHelper,
            gidHelper: context.gidHelper,
            setgroups: context.gidHelper ? 'allow' : 'deny',
          };
      continue;
    }
    if (type === 'mnt' && !ns.path) newMountNs = true;
    if (type === 'pid' && !ns.path) newPidNs = true;
    namespaces.push(ns.path ? { type, path: ns.path } : { type });
  }
  if (!newMountNs) throw new NookError('a new mount namespace is required to build a container root');

  const outerOps: PlanOp[] = [
    // Mounts made in the container must not propagate back to the host's tree.
    { op: 'mount', source: 'none', target: '/', fstype: '', flags: MS.REC | MS.PRIVATE, data: '', inRoot: false, ensure: 'none' },
    ...context.rootfsOps,
  ];
  // A new network namespace starts with lo down; every mode wants it up.
  if (namespaces.some((ns) => ns.type === 'net' && !ns.path)) outerOps.push({ op: 'loopback-up' });

  const innerOps: PlanOp[] = [
    // pivot_root needs the new root to be a mount point.
    { op: 'mount', source: rootPath, target: rootPath, fstype: '', flags: MS.BIND | MS.REC, data: '', inRoot: false, ensure: 'none' },
    { op: 'set-root', path: rootPath },
  ];
  const newNetworkNamespace = namespaces.some((ns) => ns.type === 'net' && !ns.path);
  for (const mount of spec.mounts ?? []) innerOps.push(...mountOps(mount, { ...context, newNetworkNamespace }, newPidNs));
  const hasDevTmpfs = (spec.mounts ?? []).some((m) => m.destination === '/dev' && m.type === 'tmpfs');
  if (hasDevTmpfs) {
    for (const device of DEFAULT_DEVICES) {
      innerOps.push({ op: 'mount', source: device, target: device, fstype: '', flags: MS.BIND, data: '', inRoot: true, ensure: 'file' });
    }
    for (const [target, path] of DEV_SYMLINKS) innerOps.push({ op: 'symlink', target, path, inRoot: true });
  }
  // linux.devices: bound from the host as rootless runc does (mknod needs real root).
  for (const device of linux.devices ?? []) {
    if (hasDevTmpfs && DEFAULT_DEVICES.includes(device.path)) continue;
    if (!device.path.startsWith('/dev/')) throw new NookError(`device "${device.path}" must be under /dev`);
    innerOps.push({ op: 'mount', source: device.path, target: device.path, fstype: '', flags: MS.BIND, data: '', inRoot: true, ensure: 'file' });
  }
  if (spec.hostname && namespaces.some((ns) => ns.type === 'uts' && !ns.path)) innerOps.push({ op: 'sethostname', name: spec.hostname });
  innerOps.push({ op: 'pivot-root', path: rootPath });
  // Before maskedPaths and readonlyPaths, which make /proc/sys read-only (as runc orders it).
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) innerOps.push({ op: 'write-file', path: sysctlPath(key), content: value, inRoot: false });
  for (const path of linux.maskedPaths ?? []) innerOps.push({ op: 'mask', path });
  for (const path of linux.readonlyPaths ?? []) innerOps.push({ op: 'readonly', path });
  if (spec.root.readonly) {
    innerOps.push({ op: 'mount', source: '/', target: '/', fstype: '', flags: MS.BIND | MS.REMOUNT | MS.RDONLY, data: '', inRoot: false, ensure: 'none', keepLockedFlags: true });
  }

  const rlimits: Rlimit[] = (process.rlimits ?? []).map((r) => ({ resource: rlimitNumber(r.type), soft: r.soft, hard: r.hard }));

  return {
    trace: context.trace,
    user,
    namespaces,
    outerOps,
    innerOps,
    process: {
      args: process.args,
      env: process.env ?? [],
      cwd: process.cwd || '/',
      uid: process.user.uid,
      gid: process.user.gid,
      additionalGids: process.user.additionalGids ?? [],
      capabilities: context.capabilities,
      noNewPrivileges: process.noNewPrivileges ?? false,
      seccompFilter: context.seccompFilter,
      rlimits,
      oomScoreAdj: process.oomScoreAdj ?? null,
      searchPath: !process.args[0]!.includes('/'),
      terminal: process.terminal ?? false,
      ...(process.consoleSize ? { consoleSize: { rows: process.consoleSize.height, cols: process.consoleSize.width } } : {}),
      ...(process.user.umask !== undefined ? { umask: process.user.umask } : {}),
    },
    monitor: context.monitor,
  };
}

/**
 * net.ipv4.ip_forward -> /proc/sys/net/ipv4/ip_forward; with slashes the key is
 * a path already (an interface name with a dot: net/ipv4/conf/eth0.100/forwarding).
 * A key that could leave /proc/sys is refused.
 */
export function sysctlPath(key: string): string {
  if (!/^[A-Za-z0-9_.\/:*-]+$/.test(key) || key.split(/[./]/).some((part) => part === '')) throw new NookError(`invalid sysctl "${key}"`);
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

function mountOps(mount: OciMount, context: PlanContext, newPidNs: boolean): PlanOp[] {
  const { flags, propagation, data } = parseMountOptions(mount.options);
  const type = mount.type ?? (flags & MS.BIND ? 'bind' : '');
  const target = mount.destination;
  if (!target.startsWith('/')) throw new NookError(`mount destination "${target}" must be an absolute path`);

  if (flags & MS.BIND || type === 'bind') {
    const source = mount.source ?? '';
    const ensure = context.isDirectory(source) ? 'dir' : 'file';
    const ops: PlanOp[] = [{ op: 'mount', source, target, fstype: '', flags: (flags | MS.BIND) & ~(MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC), data: '', inRoot: true, ensure }];
    // A bind mount ignores most flags on creation: apply them with a remount.
    const remountFlags = flags & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME);
    if (remountFlags) {
      ops.push({ op: 'mount', source: '', target, fstype: '', flags: MS.BIND | MS.REMOUNT | remountFlags, data: '', inRoot: true, ensure: 'none', keepLockedFlags: true });
    }
    if (propagation) ops.push({ op: 'mount', source: '', target, fstype: '', flags: propagation, data: '', inRoot: true, ensure: 'none' });
    return ops;
  }
  if (type === 'proc' && !newPidNs) {
    // A proc of the host's pid namespace can only be bound, not mounted anew.
    return [{ op: 'mount', source: '/proc', target, fstype: '', flags: MS.BIND | MS.REC, data: '', inRoot: true, ensure: 'dir' }];
  }
  if (type === 'sysfs' && context.newNetworkNamespace) {
    // A fresh sysfs shows the container's own network devices; the kernel
    // allows it only in a network namespace the container's user namespace owns.
    return [{ op: 'mount', source: 'sysfs', target, fstype: 'sysfs', flags: flags | MS.RDONLY, data, inRoot: true, ensure: 'dir' }];
  }
  if (type === 'sysfs') {
    // With the host's network (or another's), binding the host's read-only is what works.
    return [
      { op: 'mount', source: '/sys', target, fstype: '', flags: MS.BIND | MS.REC, data: '', inRoot: true, ensure: 'dir' },
      { op: 'mount', source: '', target, fstype: '', flags: MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, data: '', inRoot: true, ensure: 'none', keepLockedFlags: true },
    ];
  }
  if (type === 'cgroup' || type === 'cgroup2') {
    return [{ op: 'mount', source: mount.source ?? 'cgroup', target, fstype: type, flags, data, inRoot: true, ensure: 'dir', optional: true }];
  }
  return [{ op: 'mount', source: mount.source ?? type, target, fstype: type, flags, data, inRoot: true, ensure: 'dir' }];
}

export { MNT_DETACH };
