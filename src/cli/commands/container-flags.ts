/**
 * The flags `run` and `create` share, with podman's names and meanings, and
 * their translation into ContainerOptions.
 */
import { Command, Option } from 'commander';
import { NookError } from '../../lib/errors.js';
import type { ContainerOptions, VolumeOption } from '../../container/options.js';
import { parseResourceFlags, type ResourceFlags } from '../../cgroups/resources.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addContainerFlags(command: Command): Command {
  return command
    .argument('<image>', 'image to run (e.g. localhost/busybox)')
    .argument('[command...]', 'command and arguments (default: the image\'s Entrypoint and Cmd)')
    .option('--name <name>', 'name of the container')
    .option('-e, --env <NAME=VALUE>', 'set an environment variable (NAME alone takes the host\'s value)', collect, [])
    .option('--env-file <file>', 'read environment variables from a file', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (and group) to run as, names looked up in the container')
    .option('-h, --hostname <name>', 'hostname inside the container (default: the short id)')
    .option('--entrypoint <command>', 'override the image\'s entrypoint (a command or a JSON array)')
    .option('-v, --volume <host:container[:ro]>', 'bind-mount a host path', collect, [])
    .option('--tmpfs <path[:options]>', 'mount a tmpfs', collect, [])
    .option('--read-only', 'mount the container\'s root read-only', false)
    .option('--ulimit <name=soft[:hard]>', 'set a resource limit (e.g. nofile=1024:2048)', collect, [])
    .option('--cap-add <cap>', 'add a capability (e.g. NET_ADMIN, ALL)', collect, [])
    .option('--cap-drop <cap>', 'drop a capability (e.g. CHOWN, ALL)', collect, [])
    .option('--privileged', 'keep every capability of the user namespace, no seccomp, no masked paths', false)
    .option('--security-opt <opt>', 'seccomp=unconfined|FILE.json, no-new-privileges', collect, [])
    .option('--network <mode>', 'slirp4netns[:opts], none, host, container:NAME, pasta')
    .addOption(new Option('--net <mode>', 'same as --network').hideHelp())
    .option('-p, --publish <[ip:]hostPort:containerPort[/proto]>', 'publish a port', collect, [])
    .option('--init', 'run a tiny init as PID 1 that reaps zombies and forwards signals', false)
    .option('-t, --tty', 'allocate a pseudo-terminal', false)
    .option('-i, --interactive', 'keep stdin open', false)
    .option('--userns <mode>', 'user namespace mode: "" (default mapping) or keep-id')
    .addOption(new Option('--storage-driver <driver>', 'storage driver').choices(['overlay', 'fuse-overlayfs', 'vfs']))
    .addOption(new Option('--pull <policy>', 'pull the image: missing (when not in the store), always, never').choices(['missing', 'always', 'never']).default('missing'))
    .option('-m, --memory <size>', 'memory limit, e.g. 512m or 2g (cgroup memory.max)')
    .option('--memory-swap <size>', 'memory plus swap limit, -1 for unlimited swap (default: twice --memory)')
    .option('--memory-reservation <size>', 'memory soft limit (memory.low)')
    .option('--cpus <number>', 'number of CPUs, e.g. 0.5 (cpu.max)')
    .option('-c, --cpu-shares <shares>', 'relative CPU weight, 2..262144, 1024 is the default (cpu.weight)')
    .option('--cpu-weight <weight>', 'relative CPU weight, 1..10000, 100 is the default (cpu.weight)')
    .option('--cpuset-cpus <list>', 'CPUs the container may run on, e.g. 0-1,3 (cpuset.cpus)')
    .option('--pids-limit <n>', 'maximum number of processes, -1 for no limit (pids.max)')
    .option('--blkio-weight <weight>', 'relative block I/O weight, 10..1000 (io.weight)')
    .addOption(new Option('--cgroups <mode>', 'enabled: a cgroup of its own (the default); disabled: none, and no limits').choices(['enabled', 'disabled']))
    .addOption(new Option('--cgroup-manager <manager>', 'systemd, cgroupfs or none (default: what nook info shows)').choices(['systemd', 'cgroupfs', 'none']))
    .option('--cgroup-parent <path>', 'cgroupfs manager: the cgroup to make containers\' cgroups under (e.g. /ci/nook)')
    // --cgroup-manager is also a global option (nook --cgroup-manager cgroupfs run ...), as in podman.
    .hook('preAction', (_parent, action) => {
      const global = action.optsWithGlobals<{ cgroupManager?: string }>().cgroupManager;
      if (action.getOptionValue('cgroupManager') === undefined && global !== undefined) action.setOptionValue('cgroupManager', global);
    });
}

export function parseVolume(value: string): VolumeOption {
  const parts = value.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) {
    throw new NookError(`invalid volume "${value}": expected /host/path:/container/path[:ro|rw]`);
  }
  const [source, destination, mode] = parts as [string, string, string | undefined];
  if (!source.startsWith('/')) throw new NookError(`invalid volume "${value}": named volumes are not supported, give an absolute host path`);
  if (!destination.startsWith('/')) throw new NookError(`invalid volume "${value}": the container path must be absolute`);
  const words = mode ? mode.split(',') : [];
  for (const word of words) if (!['ro', 'rw', 'z', 'Z'].includes(word)) throw new NookError(`invalid volume option "${word}" in "${value}"`);
  return { source, destination, readonly: words.includes('ro') };
}

function parseEntrypoint(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  if (value === '') return [];
  if (value.trim().startsWith('[')) {
    try {
      const parsed = JSON.parse(value) as unknown;
      if (Array.isArray(parsed) && parsed.every((v) => typeof v === 'string')) return parsed as string[];
    } catch {
      // fall through
    }
    throw new NookError(`invalid --entrypoint ${value}: a JSON array of strings was expected`);
  }
  return [value];
}

/** What commander hands over; the resource flags are the cgroups module's own type. */
interface RawFlags extends ResourceFlags {
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  entrypoint?: string;
  volume: string[];
  tmpfs: string[];
  readOnly: boolean;
  ulimit: string[];
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  securityOpt: string[];
  network?: string;
  net?: string;
  publish: string[];
  init: boolean;
  tty: boolean;
  interactive: boolean;
  userns?: string;
  storageDriver?: string;
  pull?: 'missing' | 'always' | 'never';
  cgroups?: string;
  cgroupManager?: string;
  cgroupParent?: string;
  detach?: boolean;
  rm?: boolean;
}

export function toContainerOptions(image: string, command: string[], raw: RawFlags): ContainerOptions {
  const entrypoint = parseEntrypoint(raw.entrypoint);
  if (raw.userns !== undefined && raw.userns !== '' && raw.userns !== 'keep-id' && raw.userns !== 'host') {
    throw new NookError(`unsupported --userns "${raw.userns}" (use keep-id, or leave it out)`);
  }
  if (raw.userns === 'host') throw new NookError('--userns=host needs root; rootless containers always have a user namespace');
  const resources = parseResourceFlags(raw);
  if (resources && raw.cgroups === 'disabled') throw new NookError('resource limits need a cgroup: they cannot be combined with --cgroups=disabled');
  return {
    image,
    command,
    ...(entrypoint !== undefined ? { entrypoint } : {}),
    ...(raw.name !== undefined ? { name: raw.name } : {}),
    env: raw.env,
    envFiles: raw.envFile,
    ...(raw.workdir !== undefined ? { workdir: raw.workdir } : {}),
    ...(raw.user !== undefined ? { user: raw.user } : {}),
    ...(raw.hostname !== undefined ? { hostname: raw.hostname } : {}),
    volumes: raw.volume.map(parseVolume),
    tmpfs: raw.tmpfs,
    readOnly: raw.readOnly,
    ulimits: raw.ulimit,
    capAdd: raw.capAdd,
    capDrop: raw.capDrop,
    privileged: raw.privileged,
    securityOpt: raw.securityOpt,
    ...((raw.network ?? raw.net) !== undefined ? { network: (raw.network ?? raw.net)! } : {}),
    publish: raw.publish,
    init: raw.init,
    tty: raw.tty,
    interactive: raw.interactive,
    detach: raw.detach ?? false,
    rm: raw.rm ?? false,
    ...(raw.userns ? { userns: raw.userns } : {}),
    ...(raw.storageDriver ? { storageDriver: raw.storageDriver } : {}),
    ...(raw.pull ? { pull: raw.pull } : {}),
    ...(resources ? { resources } : {}),
    ...(raw.cgroups ? { cgroups: raw.cgroups } : {}),
    ...(raw.cgroupManager ? { cgroupManager: raw.cgroupManager } : {}),
    ...(raw.cgroupParent ? { cgroupParent: raw.cgroupParent } : {}),
  };
}
