/**
 * Compiled seccomp programs, cached in the run root by the hash of the OCI
 * seccomp config and the architecture. Every container of a user usually
 * has the same profile, so `nook run` and `nook exec` then skip loading the
 * compiler and the syscall tables (~20-30 ms on a cold start).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostSeccompArch } from './arch.js';

/** Bump when the compiler's output for the same config changes. */
const COMPILER_VERSION = 1;

export async function compiledSeccompHex(config: unknown, runRoot: string): Promise<string> {
  const arch = hostSeccompArch();
  const key = createHash('sha256').update(`${COMPILER_VERSION}\0${arch}\0${JSON.stringify(config)}`).digest('hex');
  const dir = join(runRoot, 'seccomp');
  const file = join(dir, `${key}.bpf`);
  try {
    return readFileSync(file, 'utf8');
  } catch {
    // not cached yet
  }
  const [{ compileSeccomp }, { parseLinuxSeccomp }] = await Promise.all([import('./compiler.js'), import('./oci.js')]);
  const hex = compileSeccomp(parseLinuxSeccomp(config), arch).hex;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, hex, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // a cache that cannot be written is only slower
  }
  return hex;
}
