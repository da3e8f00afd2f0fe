/**
 * Finding the host programs nook drives (newuidmap, newgidmap, getsubids,
 * slirp4netns, pasta, fuse-overlayfs...). Several live in sbin directories
 * that a user's PATH lacks on some distributions, so those are searched too.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const EXTRA_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin'];

export function findProgram(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/')), ...EXTRA_DIRS];
  for (const dir of new Set(dirs)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next directory
    }
  }
  return null;
}
