/**
 * Giving a container its network, between the moment the executor has
 * created the container's namespaces (and reported its pid) and the moment
 * the container's process may execve. The modes that need a helper
 * (slirp4netns, pasta) start it here; `none` brings `lo` up; `host` and
 * `container:NAME` need nothing at this point (their work is in
 * namespacesFor and containerFiles).
 *
 * What survives nook: the returned NetworkState, which the container's record
 * keeps (ports for `nook port`, the helper's pid and log for troubleshooting).
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NookError } from '../lib/errors.js';
import { ensureDir } from '../lib/paths.js';
import { findProgram as findExecutable } from '../lib/programs.js';
import { formatNetworkMode, slirpAddresses, type NetworkMode } from './mode.js';
import type { PortMapping } from './publish.js';
import { addHostForward, MAX_UNIX_SOCKET_PATH } from './slirp-api.js';
import { portsLeftToHelper } from './port-forwards.js';
import type { PortForward } from '../runtime/plan.js';
import { probeSlirp4netns } from './slirp-features.js';
import { startSlirp4netns } from './slirp4netns.js';
import { closeLifeline, lifelineFd, type Lifeline } from './lifeline.js';
import { processGone, processStartTime } from '../lib/processes.js';
import { signalHelper, stopHelper } from './helper-process.js';

/** What a container's record keeps about its network. Plain JSON. */
export interface NetworkState {
  /** the --network value, normalised (formatNetworkMode) */
  mode: string;
  /** published ports, with host ports resolved */
  ports: PortMapping[];
  /** the container's address, the host as seen from inside, and the DNS server, when the mode has them */
  address?: string;
  gateway?: string;
  dns?: string;
  /** the helper process (slirp4netns or pasta) */
  helper?: {
    name: 'slirp4netns' | 'pasta';
    pid: number;
    /** /proc/PID/stat start time, to tell the helper from a reused pid */
    startTime?: string;
    logPath: string;
    /** slirp4netns's API socket */
    apiSocket?: string;
    /** whether the helper listens on host ports (absent in older records: assume it does) */
    holdsHostPorts?: boolean;
  };
  /** container:NAME */
  joinedContainer?: string;
}

export interface NetworkHandle {
  state: NetworkState;
  /** the helper's pid (slirp4netns or pasta), or null for modes without one */
  helperPid: number | null;
  /** things the user should know (one line each), for the CLI to print on stderr */
  warnings: string[];
  /** Stops the helper now (e.g. a failed start); normally it ends by itself with the container. */
  stop(): Promise<void>;
}

export interface AttachOptions {
  /** the container's process, held before execve, in its new network (and user) namespace */
  pid: number;
  /** from checkPortsAvailable: resolved host ports (all of them: the record lists them) */
  ports: readonly PortMapping[];
  /**
   * The TCP ports the executor forwards itself (ExecutorPlan.portForwards,
   * from executorPortForwards): slirp4netns is not asked to forward them.
   */
  executorForwards?: readonly PortForward[];
  /** the container's directory under the run root: logs and (when short enough) the API socket go there */
  runDir: string;
  /** the run root: caches, and a short socket directory when runDir is too deep */
  runRoot: string;
  /**
   * nook's end of the lifeline: the read end of a pipe (pipe2) whose write end
   * the executor's monitor holds for as long as the container lives. It
   * becomes slirp4netns's --exit-fd (pasta's watchdog reads it). Required for
   * slirp4netns and pasta; attachNetwork closes nook's copy in every case.
   */
  lifeline?: Lifeline;
  env?: NodeJS.ProcessEnv;
}

export async function attachNetwork(mode: NetworkMode, options: AttachOptions): Promise<NetworkHandle> {
  try {
    checkPublishAllowed(mode, options.ports);
    switch (mode.kind) {
      case 'slirp4netns':
        return await attachSlirp4netns(mode, options);
      case 'pasta':
        return await (await import('./pasta.js')).startPasta(mode, options);
      case 'container':
        return staticHandle({ mode: formatNetworkMode(mode), ports: [], joinedContainer: mode.container });
      case 'none':
      case 'host':
        return staticHandle({ mode: formatNetworkMode(mode), ports: [] });
    }
  } finally {
    closeLifeline(options.lifeline);
  }
}

/** -p only makes sense where nook forwards ports. */
export function checkPublishAllowed(mode: NetworkMode, ports: readonly PortMapping[]): void {
  if (ports.length === 0) return;
  switch (mode.kind) {
    case 'none':
      throw new NookError('cannot publish ports with --network none: the container has no network');
    case 'host':
      throw new NookError("cannot publish ports with --network host: the container's ports already are the host's");
    case 'container':
      throw new NookError(`cannot publish ports with --network container:${mode.container}: publish them on ${mode.container}, which owns the network`);
    default:
  }
}

function staticHandle(state: NetworkState): NetworkHandle {
  return { state, helperPid: null, warnings: [], stop: async () => {} };
}

async function attachSlirp4netns(mode: Extract<NetworkMode, { kind: 'slirp4netns' }>, options: AttachOptions): Promise<NetworkHandle> {
  const binary = findExecutable('slirp4netns', options.env);
  if (!binary) throw new NookError('slirp4netns is not installed: install it (Debian/Ubuntu: apt install slirp4netns), or use --network none');
  const lifeline = lifelineFd(options.lifeline, 'slirp4netns');
  const features = await probeSlirp4netns(binary, options.runRoot);
  ensureDir(options.runDir);
  const apiSocket = apiSocketPath(options.runDir, options.runRoot);
  const logPath = join(options.runDir, 'slirp4netns.log');
  const slirp = await startSlirp4netns({ features, options: mode.options, pid: options.pid, apiSocket, logPath, lifelineFd: lifeline });
  const stop = () => stopHelper(slirp.pid, apiSocket);
  const helperPorts = portsLeftToHelper(options.ports, options.executorForwards ?? []);
  try {
    for (const port of helperPorts) await addHostForward(apiSocket, port);
  } catch (error) {
    await stop();
    throw error;
  }
  const addresses = slirpAddresses(mode.options.cidr);
  const startTime = processStartTime(slirp.pid);
  return {
    state: {
      mode: formatNetworkMode(mode),
      ports: [...options.ports],
      address: addresses.guest,
      gateway: addresses.gateway,
      dns: addresses.dns,
      helper: { name: 'slirp4netns', pid: slirp.pid, ...(startTime ? { startTime } : {}), logPath, apiSocket, holdsHostPorts: helperPorts.length > 0 },
    },
    helperPid: slirp.pid,
    warnings: slirpWarnings(mode.options, options.ports),
    stop,
  };
}

function slirpWarnings(options: { allowHostLoopback: boolean }, ports: readonly PortMapping[]): string[] {
  const udp = ports.filter((p) => p.protocol === 'udp');
  if (udp.length === 0 || options.allowHostLoopback) return [];
  // libslirp rewrites a loopback client's address to the gateway's, and will not send the reply back to loopback when host loopback is disabled.
  return [
    `published UDP port${udp.length > 1 ? 's' : ''} ${udp.map((p) => p.hostPort).join(', ')}: replies to clients on this host's 127.0.0.1 are dropped; clients from other hosts are answered (use --network slirp4netns:allow_host_loopback=true to answer local clients too)`,
  ];
}

/**
 * A unix socket path must fit in sun_path (107 bytes). The container's run
 * directory (…/containers/<64-hex id>) often does not, so fall back to a short
 * name under the run root, then under a private directory in /tmp.
 */
export function apiSocketPath(runDir: string, runRoot: string, uid = process.getuid?.() ?? 0): string {
  const fits = (p: string) => Buffer.byteLength(p) <= MAX_UNIX_SOCKET_PATH;
  const inRunDir = join(runDir, 'slirp4netns.sock');
  if (fits(inRunDir)) return inRunDir;
  const name = `${createHash('sha256').update(runDir).digest('hex').slice(0, 16)}.sock`;
  const inRunRoot = join(runRoot, 'net', name);
  if (fits(inRunRoot)) {
    ensurePrivateDir(join(runRoot, 'net'), uid);
    return inRunRoot;
  }
  const dir = join(tmpdir(), `nook-net-${uid}`);
  ensurePrivateDir(dir, uid);
  return join(dir, name);
}

/** A directory only we can write to: /tmp is shared, so refuse one someone else prepared. */
function ensurePrivateDir(dir: string, uid: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new NookError(`${dir} is not a private directory of this user (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)}): remove it`);
  }
}

/**
 * For `nook stop`/`rm` after the container ended: the helper normally exited
 * with it (exit fd); this removes what it left (its API socket) and ends it if
 * it somehow still runs. Safe to call more than once.
 */
export async function releaseNetwork(state: NetworkState | undefined): Promise<void> {
  const helper = state?.helper;
  if (!helper) return;
  const alive = !processGone(helper.pid) && (helper.startTime === undefined || processStartTime(helper.pid) === helper.startTime);
  if (!alive) {
    if (helper.apiSocket) rmSync(helper.apiSocket, { force: true });
  } else if (state.ports.length > 0 && helper.holdsHostPorts !== false) {
    // The next `run -p` of the same port must find it free: wait until the helper has let go.
    await stopHelper(helper.pid, helper.apiSocket);
  } else {
    // Already on its way out (the container's end closed its exit fd), but a
    // helper's exit takes ~20 ms in the kernel (its tap device is torn down
    // after RCU grace periods): `run --rm` need not wait for that.
    signalHelper(helper.pid, 'SIGTERM');
    if (helper.apiSocket) rmSync(helper.apiSocket, { force: true });
  }
}
