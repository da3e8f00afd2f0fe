/**
 * newuidmap and newgidmap write a multi-range id map for an unprivileged
 * user, which the kernel only allows to a process with CAP_SETUID/CAP_SETGID
 * in the parent namespace: so they must be setuid root or carry file
 * capabilities. Without them nook falls back to a single mapping.
 */
import type { HostView } from './view.js';

export interface IdMapHelperFacts {
  name: 'newuidmap' | 'newgidmap';
  path: string | null;
  setuidRoot: boolean;
  /** `getcap` output for the file, e.g. "cap_setuid=ep"; null when none or getcap is missing */
  fileCapabilities: string | null;
  /** whether getcap could be asked at all */
  capabilitiesKnown: boolean;
  /** this user may execute it */
  executable: boolean;
}

const neededCapability = { newuidmap: 'cap_setuid', newgidmap: 'cap_setgid' } as const;

/** `getcap` prints "/usr/bin/newuidmap cap_setuid=ep" (new) or "/usr/bin/newuidmap = cap_setuid+ep" (old). */
export function parseGetcap(output: string, path: string): string | null {
  const line = output.split('\n').find((l) => l.startsWith(path));
  if (!line) return null;
  const caps = line.slice(path.length).replace(/^\s*=?\s*/, '').trim();
  return caps === '' ? null : caps;
}

export function helperHasCapability(facts: IdMapHelperFacts): boolean {
  return facts.fileCapabilities !== null && facts.fileCapabilities.includes(neededCapability[facts.name]);
}

export async function readIdMapHelperFacts(view: HostView, name: 'newuidmap' | 'newgidmap'): Promise<IdMapHelperFacts> {
  const path = await view.which(name);
  if (!path) return { name, path: null, setuidRoot: false, fileCapabilities: null, capabilitiesKnown: true, executable: false };
  const [info, executable] = await Promise.all([view.stat(path), view.access(path, 'x')]);
  const setuidRoot = info !== null && info.uid === 0 && (info.mode & 0o4000) !== 0;
  let fileCapabilities: string | null = null;
  let capabilitiesKnown = true;
  if (!setuidRoot) {
    const getcap = await view.which('getcap');
    if (getcap) {
      const result = await view.run(getcap, [path], { timeoutMs: 2000 });
      fileCapabilities = parseGetcap(result.stdout, path);
    } else {
      capabilitiesKnown = false;
    }
  }
  return { name, path, setuidRoot, fileCapabilities, capabilitiesKnown, executable };
}
