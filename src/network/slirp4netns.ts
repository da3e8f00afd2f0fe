/**
 * Running slirp4netns for one container.
 *
 * slirp4netns enters the container's namespaces just long enough to create a
 * tap device there (`--configure` also gives it 10.0.2.100/24, a default route
 * via 10.0.2.2 and brings it up), then runs a user-mode TCP/IP stack
 * (libslirp) in the host's network namespace: every packet the container
 * sends on tap0 becomes an ordinary socket call by slirp4netns on the host.
 *
 * Lifetime. slirp4netns must end with the container and must not depend on
 * nook: a detached container outlives the `nook run` that started it, and
 * nook may be killed with -9. So it is given `--exit-fd` on a socket whose
 * other end (the "lifeline") is held by the executor's monitor process,
 * which lives exactly as long as the container. When the monitor exits or is
 * killed, the kernel closes its end, slirp4netns sees the hangup and exits.
 * nook's own copy is closed as soon as slirp4netns has been started.
 * slirp4netns runs in its own session (setsid), so a ^C on nook's terminal
 * does not reach it either.
 */
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { NookError } from '../lib/errors.js';
import type { Slirp4netnsOptions } from './mode.js';
import type { Slirp4netnsFeatures } from './slirp-features.js';

export interface Slirp4netnsLaunch {
  features: Slirp4netnsFeatures;
  options: Slirp4netnsOptions;
  /** the container's process: slirp4netns joins /proc/PID/ns/user and /proc/PID/ns/net */
  pid: number;
  apiSocket: string;
  logPath: string;
  /** fd (in this process) of our end of the lifeline; duplicated into slirp4netns as its --exit-fd */
  lifelineFd: number;
  readyTimeoutMs?: number;
}

export interface RunningSlirp4netns {
  pid: number;
  apiSocket: string;
  logPath: string;
}

/** fd numbers inside slirp4netns */
const EXIT_FD = 3;
const READY_FD = 4;

export function slirp4netnsArgs(launch: Omit<Slirp4netnsLaunch, 'lifelineFd' | 'logPath'>): string[] {
  const { features, options } = launch;
  const args = ['--configure', `--mtu=${options.mtu}`, `--exit-fd=${EXIT_FD}`, `--ready-fd=${READY_FD}`, `--api-socket=${launch.apiSocket}`];
  if (!options.allowHostLoopback) {
    if (!features.disableHostLoopback) throw new NookError(`${features.binary} cannot disable access to the host's loopback (--disable-host-loopback): upgrade slirp4netns, or pass --network slirp4netns:allow_host_loopback=true`);
    args.push('--disable-host-loopback');
  }
  if (options.cidr !== '10.0.2.0/24') {
    if (!features.cidr) throw new NookError(`${features.binary} does not support --cidr: upgrade slirp4netns`);
    args.push(`--cidr=${options.cidr}`);
  }
  if (options.enableIpv6) {
    if (!features.ipv6) throw new NookError(`${features.binary} does not support IPv6 (--enable-ipv6): upgrade slirp4netns`);
    args.push('--enable-ipv6');
  }
  // A sandboxed slirp4netns has its own mount namespace (only /etc and /run, read-only) and no capabilities;
  // seccomp narrows its system calls. Both cost nothing per packet.
  if (features.sandbox) args.push('--enable-sandbox');
  if (features.seccomp) args.push('--enable-seccomp');
  // The pid form, not --netns-type=path: slirp4netns 1.2's sandbox joins the user namespace only when given a pid.
  args.push(String(launch.pid), 'tap0');
  return args;
}

export async function startSlirp4netns(launch: Slirp4netnsLaunch): Promise<RunningSlirp4netns> {
  const args = slirp4netnsArgs(launch);
  rmSync(launch.apiSocket, { force: true });
  const logFd = openSync(launch.logPath, 'a', 0o600);
  // node:child_process rather than execa here: this is on every `nook run`'s
  // path, and loading execa costs ~100 ms (175 modules) against a 1 ms spawn.
  let subprocess: ChildProcess;
  try {
    subprocess = spawnProcess(launch.features.binary, args, { stdio: ['ignore', logFd, logFd, launch.lifelineFd, 'pipe'], detached: true });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<void>((resolve) => {
    subprocess.once('exit', () => resolve());
    subprocess.once('error', () => resolve());
  });
  const pid = subprocess.pid;
  const readyStream = subprocess.stdio[READY_FD] as NodeJS.ReadableStream | undefined;
  if (pid === undefined || !readyStream) {
    await exited;
    throw new NookError(`cannot start ${launch.features.binary}: ${lastLogLine(launch.logPath) ?? 'it did not start'}`, { detail: readLog(launch.logPath) });
  }

  const timeoutMs = launch.readyTimeoutMs ?? 10_000;
  const outcome = await new Promise<'ready' | 'exited' | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    readyStream.once('data', () => {
      clearTimeout(timer);
      resolve('ready');
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolve('exited');
    });
  });
  (readyStream as unknown as { destroy(): void }).destroy();

  if (outcome !== 'ready') {
    if (outcome === 'timeout') process.kill(pid, 'SIGKILL');
    await exited;
    const why = outcome === 'timeout' ? `not ready after ${timeoutMs} ms` : (lastLogLine(launch.logPath) ?? 'it exited');
    throw new NookError(`slirp4netns failed to set up the container's network: ${why}`, { detail: readLog(launch.logPath) });
  }
  // From here slirp4netns lives on its own; nook may exit at any time.
  subprocess.unref();
  return { pid, apiSocket: launch.apiSocket, logPath: launch.logPath };
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The most telling line of slirp4netns's log: its last complaint, skipping its banner. */
function lastLogLine(path: string): string | undefined {
  const lines = readLog(path)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('*') && !/^(WARNING|Starting slirp|sent tapfd|received tapfd|do_slirp is exiting)/.test(l));
  return lines.at(-1);
}
