/**
 * Where nook is installed: the package root (for its version) and the
 * executor binary, which is the process that creates user namespaces and so
 * the path an AppArmor profile must name on Ubuntu 23.10+
 * (kernel.apparmor_restrict_unprivileged_userns=1).
 */
import { fileURLToPath } from 'node:url';

export { executorPath } from '../runtime/executor.js';

/** The package root: this file is dist/src/host/executor-location.js. */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
}
