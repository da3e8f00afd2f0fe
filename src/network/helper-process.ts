/**
 * The helper process (slirp4netns, pasta) as seen from outside: is it still
 * the process we started (start time, against pid reuse), and stopping it.
 */
import { readFileSync, rmSync } from 'node:fs';

/** /proc/PID/stat field 22, the start time in clock ticks. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export async function stopHelper(pid: number, socket?: string): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const deadline = Date.now() + 2000;
  while (!processGone(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (!processGone(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  // A sandboxed slirp4netns cannot unlink its socket (its root is a tmpfs by then).
  if (socket) rmSync(socket, { force: true });
}
