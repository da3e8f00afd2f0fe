/**
 * The helper process (slirp4netns, pasta) as seen from outside: is it still
 * the process we started (start time, against pid reuse), and stopping it.
 */
import { rmSync } from 'node:fs';
import { processGone } from '../lib/processes.js';

export function signalHelper(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export async function stopHelper(pid: number, socket?: string): Promise<void> {
  signalHelper(pid, 'SIGTERM');
  // It usually is on its way out already (the container's end closed its exit
  // fd) and goes within a few milliseconds: poll often at first, as `run --rm` waits for this.
  const deadline = Date.now() + 2000;
  for (let delay = 1; !processGone(pid) && Date.now() < deadline; delay = Math.min(delay * 2, 20)) {
    await new Promise((r) => setTimeout(r, delay));
  }
  if (!processGone(pid)) signalHelper(pid, 'SIGKILL');
  // A sandboxed slirp4netns cannot unlink its socket (its root is a tmpfs by then).
  if (socket) rmSync(socket, { force: true });
}
