/**
 * A new network namespace starts with `lo` down: even 127.0.0.1 is
 * unreachable until it is brought up. slirp4netns --configure and pasta
 * --config-net do it themselves; for `none` nook does it, from inside the
 * container's user and network namespaces (nsenter + ip), since Node cannot
 * enter a user namespace itself.
 */
import { execa } from 'execa';
import { NookError } from '../lib/errors.js';
import { findExecutable } from './executable.js';

export async function bringLoopbackUp(pid: number, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const nsenter = findExecutable('nsenter', env);
  const ip = findExecutable('ip', env);
  if (!nsenter || !ip) throw new NookError(`cannot bring up the container's loopback interface: ${nsenter ? 'ip (iproute2)' : 'nsenter (util-linux)'} is not installed`);
  const result = await execa(nsenter, ['-t', String(pid), '-U', '-n', '--preserve-credentials', ip, 'link', 'set', 'lo', 'up'], { reject: false, timeout: 10_000, env: { ...env, LC_ALL: 'C' } });
  if (result.exitCode !== 0) {
    throw new NookError(`cannot bring up the container's loopback interface: ${String(result.stderr).trim().split('\n').at(-1) || `exit code ${result.exitCode}`}`, { detail: String(result.stderr) });
  }
}
