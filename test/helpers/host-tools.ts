/**
 * Host programs the integration tests drive. A missing tool is a failure with
 * the package to install, never a silently skipped test.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian package of each tool the suite uses. */
const debianPackage: Record<string, string> = {
  newuidmap: 'uidmap',
  newgidmap: 'uidmap',
  slirp4netns: 'slirp4netns',
  'fuse-overlayfs': 'fuse-overlayfs',
  fusermount3: 'fuse3',
  busybox: 'busybox-static',
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  openssl: 'openssl',
  htpasswd: 'apache2-utils',
  ip: 'iproute2',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  ps: 'procps',
  gcc: 'gcc',
};

/** Absolute path of `name` on PATH, or undefined. */
export function findHostTool(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Absolute path of `name`, or throws naming the package that provides it. */
export function requireHostTool(name: string): string {
  const found = findHostTool(name);
  if (found) return found;
  const pkg = debianPackage[name];
  throw new Error(`${name} is not installed${pkg ? ` (Debian: apt-get install ${pkg})` : ''}; see .ci/run for the packages the tests need`);
}
