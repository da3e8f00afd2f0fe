/**
 * Where nook's executor binary is: it is the process that creates user
 * namespaces, so it is the path an AppArmor profile must name on Ubuntu
 * 23.10+ (kernel.apparmor_restrict_unprivileged_userns=1).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The package root: this file is dist/src/host/executor-location.js. */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
}

export function executorPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NOOK_EXECUTOR?.startsWith('/')) return env.NOOK_EXECUTOR;
  const root = packageRoot();
  const candidates = [`${root}/dist/helpers/nook-exec`, `${root}/helpers/nook-exec`];
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}
