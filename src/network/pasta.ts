/**
 * `--network pasta`: pasta (from the passt project, Debian package `passt`)
 * instead of slirp4netns. Like slirp4netns it moves packets between a tap
 * device in the container's namespace and ordinary sockets of the user on
 * the host, but it copies the host's own address, routes and MTU into the
 * namespace instead of a private 10.0.2.0/24, splices connections from the
 * host's loopback straight into the container's loopback, and keeps no TCP
 * state of its own (it maps TCP connections onto host sockets 1:1).
 *
 * Lifetime. pasta has no --exit-fd. It is run in the foreground under a
 * small `sh` that is its parent: the shell waits on the lifeline (as
 * slirp4netns's --exit-fd) and kills pasta when the executor's monitor
 * exits, and exits itself when pasta does. Being pasta's parent, the shell
 * can never signal a recycled pid.
 */
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { NookError } from '../lib/errors.js';
import { ensureDir } from '../lib/paths.js';
import { findProgram as findExecutable } from '../lib/programs.js';
import { formatNetworkMode, type NetworkMode } from './mode.js';
import type { PortMapping } from './publish.js';
import type { AttachOptions, NetworkHandle } from './attach.js';
import { processStartTime } from '../lib/processes.js';
import { lifelineFd } from './lifeline.js';

/** The watchdog: $0 is pasta's path, the rest its arguments; fd 3 is the lifeline. */
const WATCHDOG = 'pasta_bin=$0; "$pasta_bin" "$@" & p=$!; (read -r _ <&3; kill "$p" 2>/dev/null) & w=$!; wait "$p"; s=$?; kill "$w" 2>/dev/null; exit "$s"';

/** pasta's port spec: `[addr/]hostPort:containerPort`. */
function portSpec(p: PortMapping): string {
  return `${p.hostIp === '0.0.0.0' ? '' : `${p.hostIp}/`}${p.hostPort}:${p.containerPort}`;
}

export function pastaArgs(userArgs: readonly string[], ports: readonly PortMapping[], pidFile: string, logFile: string, pid: number): string[] {
  const has = (...names: string[]) => userArgs.some((a) => names.includes(a) || names.some((n) => n.startsWith('--') && a.startsWith(`${n}=`)));
  const args = ['--config-net', '--foreground', '--quiet', '--pid', pidFile, '--log-file', logFile];
  const tcp = ports.filter((p) => p.protocol === 'tcp');
  const udp = ports.filter((p) => p.protocol === 'udp');
  // pasta's default for every direction is "auto" (follow whatever gets bound): nook publishes only what -p asks for,
  // and, as with slirp4netns's --disable-host-loopback, keeps the host's loopback services out of reach.
  if (!has('-t', '--tcp-ports')) args.push(...(tcp.length ? tcp.flatMap((p) => ['-t', portSpec(p)]) : ['-t', 'none']));
  else args.push(...tcp.flatMap((p) => ['-t', portSpec(p)]));
  if (!has('-u', '--udp-ports')) args.push(...(udp.length ? udp.flatMap((p) => ['-u', portSpec(p)]) : ['-u', 'none']));
  else args.push(...udp.flatMap((p) => ['-u', portSpec(p)]));
  if (!has('-T', '--tcp-ns')) args.push('-T', 'none');
  if (!has('-U', '--udp-ns')) args.push('-U', 'none');
  if (!has('--no-map-gw')) args.push('--no-map-gw');
  args.push(...userArgs, String(pid));
  return args;
}

export async function startPasta(mode: Extract<NetworkMode, { kind: 'pasta' }>, options: AttachOptions): Promise<NetworkHandle> {
  const pasta = findExecutable('pasta', options.env);
  if (!pasta) throw new NookError('pasta is not installed: install it (Debian/Ubuntu: apt install passt), or use --network slirp4netns');
  const sh = findExecutable('sh', options.env) ?? '/bin/sh';
  // The watchdog shell blocks in read(2) on the lifeline: a non-blocking socket (as Node makes for stdio pipes) would end it at once.
  if (typeof options.lifeline !== 'number') throw new NookError('internal: pasta needs the lifeline as the fd of a blocking pipe (pipe2), not a socket');
  const lifeline = lifelineFd(options.lifeline, 'pasta');
  ensureDir(options.runDir);
  const pidFile = join(options.runDir, 'pasta.pid');
  const logFile = join(options.runDir, 'pasta.log');
  rmSync(pidFile, { force: true });
  const args = pastaArgs(mode.args, options.ports, pidFile, logFile, options.pid);

  const errFd = openSync(join(options.runDir, 'pasta.stderr'), 'w', 0o600);
  // execa passes integer fds through as they are; its types accept only literal fd numbers.
  const stdio = ['ignore', errFd, errFd, lifeline, 'ignore'] as unknown as ['ignore', 5, 5, 5, 'ignore'];
  const spawnWatchdog = () => execa(sh, ['-c', WATCHDOG, pasta, ...args], { stdio, detached: true, cleanup: false, reject: false, buffer: false });
  let watchdog: ReturnType<typeof spawnWatchdog>;
  try {
    watchdog = spawnWatchdog();
  } finally {
    closeSync(errFd);
  }

  let exited = false;
  void watchdog.then(() => {
    exited = true;
  });
  // pasta writes its pid file once the namespace is configured and the ports are bound.
  const deadline = Date.now() + 10_000;
  let pastaPid = 0;
  while (!pastaPid && !exited && Date.now() < deadline) {
    pastaPid = readPid(pidFile);
    if (!pastaPid) await new Promise((r) => setTimeout(r, 5));
  }
  if (!pastaPid) {
    if (!exited) process.kill(-watchdog.pid!, 'SIGKILL');
    await watchdog;
    const why = failureLine(logFile, join(options.runDir, 'pasta.stderr')) ?? (exited ? 'it exited' : 'not ready after 10 s');
    throw new NookError(`pasta failed to set up the container's network: ${why}`, { detail: readText(logFile) + readText(join(options.runDir, 'pasta.stderr')) });
  }
  watchdog.unref();
  const watchdogPid = watchdog.pid!;
  const startTime = processStartTime(pastaPid);
  return {
    state: {
      mode: formatNetworkMode(mode),
      ports: [...options.ports],
      helper: { name: 'pasta', pid: pastaPid, ...(startTime ? { startTime } : {}), logPath: logFile },
    },
    helperPid: pastaPid,
    warnings: [],
    async stop() {
      for (const p of [pastaPid, watchdogPid]) {
        try {
          process.kill(p, 'SIGTERM');
        } catch {
          // gone
        }
      }
    },
  };
}

function readPid(path: string): number {
  const n = Number(readText(path).trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function failureLine(...paths: string[]): string | undefined {
  const lines = paths
    .flatMap((p) => readText(p).split('\n'))
    .map((l) => l.replace(/^\d+\.\d+:\s*/, '').trim())
    .filter((l) => l !== '' && !/^Failed to send \d+ bytes to syslog/.test(l) && !/unknown version/.test(l));
  return lines.at(-1);
}
