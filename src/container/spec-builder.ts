/**
 * Image config + the user's flags -> an OCI runtime spec (config.json), the
 * one description of a container that the low-level half executes.
 */
import { NookError } from '../lib/errors.js';
import type { OciIdMapping, OciMount, OciNamespace, OciSpec } from '../runtime/spec.js';
import type { ContainerOptions } from './options.js';
import { resolveUser, type ContainerFileReader } from './users.js';

/** The image config's "config" object (OCI image spec), the part run needs. */
export interface ImageRunConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** As podman's and runc's defaults: kernel interfaces a container must not read or change. */
export const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
  '/sys/dev/block',
];
export const READONLY_PATHS = ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface SpecInputs {
  options: ContainerOptions;
  imageConfig: ImageRunConfig;
  rootPath: string;
  hostname: string;
  uidMappings: OciIdMapping[];
  gidMappings: OciIdMapping[];
  /** Files nook generates per container (hosts, hostname, resolv.conf): container path -> host path. */
  generatedFiles: Record<string, string>;
  /** Reads a file of the image (e.g. /etc/passwd) for user lookups. */
  readImageFile: ContainerFileReader;
  capabilities: NonNullable<NonNullable<OciSpec['process']>['capabilities']>;
  seccomp: NonNullable<OciSpec['linux']>['seccomp'] | undefined;
  /** The network namespace: new, a path to join, or none for the host's. */
  network: { kind: 'new' } | { kind: 'join'; path: string } | { kind: 'host' };
  /** Where the --init binary is on the host, when asked for. */
  initPath?: string;
  /** Environment variables from --env-file, already read. */
  envFileEntries: string[];
  /** The container has a cgroup of its own on cgroup v2: mount its subtree at /sys/fs/cgroup. */
  cgroupMount?: boolean;
}

export function buildSpec(input: SpecInputs): OciSpec {
  const { options, imageConfig } = input;

  const entrypoint = options.entrypoint ?? imageConfig.Entrypoint ?? [];
  const cmd = options.command.length ? options.command : options.entrypoint ? [] : imageConfig.Cmd ?? [];
  let args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new NookError(`no command given and image ${options.image} has no Cmd or Entrypoint`);
  if (options.init) {
    if (!input.initPath) throw new NookError('--init: the nook-init helper is missing (run npm run build)');
    args = ['/run/nook-init', '--', ...args];
  }

  const env = mergeEnv(
    [`PATH=${DEFAULT_PATH}`, 'container=nook', ...(options.tty ? ['TERM=xterm'] : [])],
    imageConfig.Env ?? [],
    [`HOSTNAME=${input.hostname}`],
    input.envFileEntries,
    options.env.map((entry) => expandEnvFromHost(entry)).filter((entry): entry is string => entry !== null),
  );

  const user = resolveUser(options.user ?? imageConfig.User ?? '', input.readImageFile);
  const home = user.home ?? '/';
  const finalEnv = env.some((e) => e.startsWith('HOME=')) ? env : [...env, `HOME=${home}`];

  const namespaces: OciNamespace[] = [{ type: 'user' }, { type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }, { type: 'cgroup' }];
  if (input.network.kind === 'new') namespaces.push({ type: 'network' });
  if (input.network.kind === 'join') namespaces.push({ type: 'network', path: input.network.path });

  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
  // In its own cgroup namespace, a fresh cgroup2 mount shows the container's own subtree (read-only, as docker).
  if (input.cgroupMount) mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup2', source: 'cgroup2', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  for (const [destination, source] of Object.entries(input.generatedFiles)) {
    mounts.push({ destination, type: 'bind', source, options: ['rbind', 'rprivate'] });
  }
  for (const volume of options.volumes) {
    mounts.push({ destination: volume.destination, type: 'bind', source: volume.source, options: ['rbind', 'rprivate', ...(volume.readonly ? ['ro'] : [])] });
  }
  for (const entry of options.tmpfs) {
    const [destination, extra] = splitOnce(entry, ':');
    mounts.push({ destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(extra ? extra.split(',') : ['mode=1777'])] });
  }
  if (options.init && input.initPath) {
    mounts.push({ destination: '/run/nook-init', type: 'bind', source: input.initPath, options: ['bind', 'ro'] });
  }

  return {
    ociVersion: '1.2.0',
    process: {
      terminal: options.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args,
      env: finalEnv,
      cwd: options.workdir ?? (imageConfig.WorkingDir || '/'),
      capabilities: input.capabilities,
      rlimits: options.ulimits.map(parseUlimit),
      noNewPrivileges: !options.privileged || options.securityOpt.includes('no-new-privileges'),
    },
    root: { path: input.rootPath, readonly: options.readOnly },
    hostname: input.hostname,
    mounts,
    linux: {
      namespaces,
      uidMappings: input.uidMappings,
      gidMappings: input.gidMappings,
      ...(input.seccomp ? { seccomp: input.seccomp } : {}),
      ...(options.resources ? { resources: options.resources as Record<string, unknown> } : {}),
      maskedPaths: options.privileged ? [] : MASKED_PATHS,
      readonlyPaths: options.privileged ? [] : READONLY_PATHS,
    },
  };
}

/** Later lists override earlier ones by variable name, keeping first-seen order. */
export function mergeEnv(...lists: string[][]): string[] {
  const byName = new Map<string, string>();
  for (const list of lists) {
    for (const entry of list) {
      const name = splitOnce(entry, '=')[0];
      byName.delete(name);
      byName.set(name, entry);
    }
  }
  return [...byName.values()];
}

/** `-e NAME` without a value takes the host's value, as podman; absent on the host: dropped. */
function expandEnvFromHost(entry: string): string | null {
  if (entry.includes('=')) return entry;
  const value = process.env[entry];
  return value === undefined ? null : `${entry}=${value}`;
}

/** Lines of an --env-file: NAME=VALUE, NAME (host's value), # comments. */
export function parseEnvFile(text: string): string[] {
  const entries: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const expanded = expandEnvFromHost(line);
    if (expanded !== null) entries.push(expanded);
  }
  return entries;
}

const ULIMIT_NAMES: Record<string, string> = {
  core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE', locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE', nofile: 'RLIMIT_NOFILE',
  nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO', rttime: 'RLIMIT_RTTIME',
  sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK', as: 'RLIMIT_AS',
};

/** --ulimit name=soft[:hard], with -1 or "unlimited" for no limit. */
export function parseUlimit(value: string): { type: string; soft: number; hard: number } {
  const [name, limits] = splitOnce(value, '=');
  const type = ULIMIT_NAMES[name];
  if (!type || !limits) throw new NookError(`invalid --ulimit "${value}": expected NAME=SOFT[:HARD] with NAME one of ${Object.keys(ULIMIT_NAMES).join(', ')}`);
  const [softText, hardText] = splitOnce(limits, ':');
  const parse = (text: string): number => {
    if (text === '-1' || text === 'unlimited') return -1;
    if (!/^\d+$/.test(text)) throw new NookError(`invalid --ulimit "${value}": "${text}" is not a number`);
    return Number(text);
  };
  const soft = parse(softText);
  const hard = hardText ? parse(hardText) : soft;
  if (hard !== -1 && (soft === -1 || soft > hard)) throw new NookError(`invalid --ulimit "${value}": soft limit above hard limit`);
  return { type, soft, hard };
}

function splitOnce(text: string, separator: string): [string, string] {
  const index = text.indexOf(separator);
  return index < 0 ? [text, ''] : [text.slice(0, index), text.slice(index + 1)];
}
