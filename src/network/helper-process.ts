/**
 * The helper process (slirp4netns, pasta) as seen from outside: is it still
 * the process we started (start time, against pid reuse), and stopping it.
 */
import { rmSync } from 'node:fs';
import { processGone } from '../lib/processes.js';

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
