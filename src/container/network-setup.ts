/**
 * The container's side of networking: which namespace it gets (create), and
 * attaching the network to the created container before it runs (start).
 */
import { linuxSyscalls } from '../syscalls/syscalls.js';
import { NookError } from '../lib/errors.js';
import { formatNetworkMode, parseNetworkOption, type NetworkMode } from '../network/mode.js';
import { namespacesFor } from '../network/namespaces.js';
import { containerFiles, type ContainerNetworkFiles } from '../network/files.js';
import type { ContainerOptions } from './options.js';
import type { PortForward } from '../runtime/plan.js';
import type { ContainerRecord, ContainerStore } from './store.js';

export interface CreateNetwork {
  mode: NetworkMode;
  modeText: string;
  namespace: { kind: 'new' } | { kind: 'join'; path: string } | { kind: 'host' };
  files(identity: { hostname: string; name: string }): Promise<ContainerNetworkFiles>;
}

async function defaultMode(): Promise<NetworkMode> {
  const { chooseNetworkMode } = await import('../host/network-mode.js');
  const choice = await chooseNetworkMode();
  return parseNetworkOption(choice.mode);
}

async function modeFor(value: string | undefined): Promise<NetworkMode> {
  return value ? parseNetworkOption(value) : defaultMode();
}

function runningPeer(store: ContainerStore, name: string): ContainerRecord {
  const peer = store.get(name);
  if (peer.status !== 'running' || !peer.pid) throw new NookError(`--network container:${name}: that container is not running`);
  return peer;
}

export async function resolveNetwork(options: ContainerOptions, store: ContainerStore): Promise<CreateNetwork> {
  const mode = await modeFor(options.network);
  if (options.publish.length) {
    const { parsePublishList } = await import('../network/publish.js');
    const { checkPublishAllowed } = await import('../network/attach.js');
    checkPublishAllowed(mode, parsePublishList(options.publish));
  }
  let namespace: CreateNetwork['namespace'] = mode.kind === 'host' ? { kind: 'host' } : { kind: 'new' };
  let joinedMode: NetworkMode | undefined;
  if (mode.kind === 'container') {
    const peer = runningPeer(store, mode.container);
    namespace = { kind: 'join', path: `/proc/${peer.pid}/ns/net` };
    joinedMode = parseNetworkOption(peer.network.mode);
  }
  return {
    mode,
    modeText: formatNetworkMode(mode),
    namespace,
    files: (identity) => containerFiles(mode, identity, joinedMode ? { joinedMode } : {}),
  };
}

export interface StartNetwork {
  needsAttach: boolean;
  joinUserNamespace: string | null;
  /** The monitor's end of the lifeline: slirp4netns exits when the monitor does. */
  lifelineFd?: number;
  /** Published TCP ports the executor forwards itself (ExecutorPlan.portForwards). */
  portForwards: PortForward[];
  /** Attaches the network; `warn` gets what the user should know (e.g. UDP replies that cannot reach host-loopback clients). */
  attach(pid: number, warn?: (line: string) => void): Promise<unknown>;
  release(): Promise<void>;
}

export async function prepareNetwork(record: ContainerRecord, store: ContainerStore): Promise<StartNetwork> {
  const mode = parseNetworkOption(record.network.mode);
  const joined = mode.kind === 'container' ? { pid: runningPeer(store, mode.container).pid! } : undefined;
  const choice = namespacesFor(mode, joined);
  if (!choice.needsAttach) {
    return { needsAttach: false, joinUserNamespace: choice.joinUserNamespace, portForwards: [], attach: async () => undefined, release: async () => {} };
  }
  const [{ parsePublishList, checkPortsAvailable }, attachModule, { executorPortForwards }] = await Promise.all([
    import('../network/publish.js'),
    import('../network/attach.js'),
    import('../network/port-forwards.js'),
  ]);
  const ports = await checkPortsAvailable(parsePublishList(record.network.publish));
  const portForwards = executorPortForwards(mode, ports);
  // slirp4netns gets the read end as its --exit-fd; the executor's monitor
  // holds the write end, so slirp4netns ends with the container even after kill -9 of nook.
  const [ours, theirs] = (await linuxSyscalls()).pipe();
  let handle: Awaited<ReturnType<typeof attachModule.attachNetwork>> | undefined;
  return {
    needsAttach: true,
    joinUserNamespace: null,
    lifelineFd: theirs,
    portForwards,
    async attach(pid, warn) {
      handle = await attachModule.attachNetwork(mode, { pid, ports, executorForwards: portForwards, runDir: store.stateDir(record.id), runRoot: store.paths.runRoot, lifeline: ours });
      for (const line of handle.warnings) warn?.(line);
      return handle.state;
    },
    async release() {
      await handle?.stop();
    },
  };
}
