/**
 * Finding the shadow-utils helpers (newuidmap, newgidmap, getsubids). They
 * live in /usr/sbin on some distributions, which a user's PATH may lack.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const EXTRA_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

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
