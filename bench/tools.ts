/**
 * The host programs the suite drives. Nothing is installed behind the user's
 * back: a missing program stops the suite with the apt-get line that brings it.
 */
import { missingPrograms } from './command.js';

/** program -> the Debian package that ships it */
const PACKAGES: Record<string, string> = {
  podman: 'podman',
  conmon: 'conmon',
  runc: 'runc',
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  debootstrap: 'debootstrap',
  slirp4netns: 'slirp4netns',
  'fuse-overlayfs': 'fuse-overlayfs',
  newuidmap: 'uidmap',
  newgidmap: 'uidmap',
  curl: 'curl',
  openssl: 'openssl',
  htpasswd: 'apache2-utils',
  busybox: 'busybox',
  unshare: 'util-linux',
  setpriv: 'util-linux',
  losetup: 'mount',
  'mkfs.ext4': 'e2fsprogs',
  tar: 'tar',
  gzip: 'gzip',
  strace: 'strace',
};

/** What every run needs, as the user who measures. */
export const WORKER_PROGRAMS = ['podman', 'conmon', 'runc', 'docker-registry', 'skopeo', 'slirp4netns', 'fuse-overlayfs', 'newuidmap', 'newgidmap', 'curl', 'openssl', 'htpasswd', 'busybox', 'unshare', 'tar', 'gzip'];

/** What the root part adds: the loop file system, the Debian image, dropping to the user. */
export const ROOT_PROGRAMS = ['debootstrap', 'setpriv', 'losetup', 'mkfs.ext4'];

export class MissingProgramsError extends Error {
  constructor(readonly missing: string[]) {
    const packages = [...new Set(missing.map((name) => PACKAGES[name] ?? name))];
    super(`missing programs: ${missing.join(', ')}; as root: apt-get install -y ${packages.join(' ')}`);
  }
}

/** Throws MissingProgramsError naming every missing program and its package. */
export async function requirePrograms(names: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const missing = await missingPrograms([...new Set(names)], env);
  if (missing.length > 0) throw new MissingProgramsError(missing);
}
