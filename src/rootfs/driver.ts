/**
 * Storage drivers: how a container's root filesystem is assembled from the
 * image's read-only layers and a per-container writable upper layer.
 *
 * Each driver only *describes* the mount as executor plan operations: the
 * mount has to happen inside the container's user and mount namespaces, which
 * only the executor can enter. One table, chosen once (as crun's cgroup
 * managers), instead of `if (fuse)` scattered around.
 */
import { dirname, relative } from 'node:path';
import { NookError } from '../lib/errors.js';
import type { PlanOp } from '../runtime/plan.js';

export type StorageDriverName = 'overlay' | 'fuse-overlayfs' | 'vfs';

export interface ContainerLayers {
  /** Extracted layer directories, top-most first (overlay's lowerdir order). */
  lowerDirs: string[];
  /** Per-container writable layer and overlay's work directory (same file system as upper). */
  upperDir: string;
  workDir: string;
  /** Where the merged root is mounted; becomes the container's "/". */
  mergedDir: string;
}

export interface StorageDriver {
  readonly name: StorageDriverName;
  /** Ops that mount the merged root at layers.mergedDir (run in the container's mount namespace). */
  mountOps(layers: ContainerLayers, options: { fuseOverlayfsPath?: string }): PlanOp[];
}

/**
 * The kernel's overlay, mountable in a user namespace since Linux 5.11 with
 * `userxattr` (overlay metadata in user.overlay.* xattrs, which an
 * unprivileged user may set). Fastest: no process in the file path.
 */
export const kernelOverlay: StorageDriver = {
  name: 'overlay',
  mountOps(layers) {
    // mount(2) data is limited to one page: name the lower layers relative to
    // their common parent, entered with chdir first.
    const parent = commonParent(layers.lowerDirs);
    const lower = layers.lowerDirs.map((dir) => relative(parent, dir)).join(':');
    const data = `lowerdir=${lower},upperdir=${layers.upperDir},workdir=${layers.workDir},userxattr`;
    if (data.length > 4000) throw new NookError(`too many image layers for one overlay mount (${layers.lowerDirs.length})`);
    return [
      { op: 'chdir', path: parent },
      { op: 'mount', source: 'overlay', target: layers.mergedDir, fstype: 'overlay', flags: 0, data, inRoot: false, ensure: 'none' },
    ];
  },
};

/**
 * fuse-overlayfs: the same layering done by a FUSE daemon, for kernels whose
 * overlay cannot be mounted without root. The daemon has to live in the
 * container's mount namespace, so the executor starts it (with a parent-death
 * signal, so it never outlives the container) rather than nook through execa.
 */
export const fuseOverlayfs: StorageDriver = {
  name: 'fuse-overlayfs',
  mountOps(layers, options) {
    const parent = commonParent(layers.lowerDirs);
    const lower = layers.lowerDirs.map((dir) => relative(parent, dir)).join(':');
    return [
      { op: 'chdir', path: parent },
      {
        op: 'spawn-mount',
        args: [options.fuseOverlayfsPath ?? 'fuse-overlayfs', '-f', '-o', `lowerdir=${lower},upperdir=${layers.upperDir},workdir=${layers.workDir}`, layers.mergedDir],
        target: layers.mergedDir,
      },
    ];
  },
};

/**
 * vfs: no union at all; the container's root is a full copy of the layers
 * made when the container is created (`copyLayersForVfs`, into the upper
 * directory), and bound here. Slow to create, works everywhere.
 */
export const vfs: StorageDriver = {
  name: 'vfs',
  mountOps(layers) {
    return [{ op: 'mount', source: layers.upperDir, target: layers.mergedDir, fstype: '', flags: 0x1000 /* MS_BIND */ | 0x4000 /* MS_REC */, data: '', inRoot: false, ensure: 'none' }];
  },
};

export const storageDrivers: Record<StorageDriverName, StorageDriver> = {
  overlay: kernelOverlay,
  'fuse-overlayfs': fuseOverlayfs,
  vfs,
};

export function storageDriver(name: string): StorageDriver {
  const driver = storageDrivers[name as StorageDriverName];
  if (!driver) throw new NookError(`unknown storage driver "${name}" (use overlay, fuse-overlayfs or vfs)`);
  return driver;
}

function commonParent(dirs: string[]): string {
  if (dirs.length === 0) throw new NookError('an image needs at least one layer');
  let parent = dirname(dirs[0]!);
  while (!dirs.every((dir) => dir.startsWith(`${parent}/`)) && parent !== '/') parent = dirname(parent);
  return parent;
}

/** Fills `target` with the image's layers for the vfs driver, in the user's namespace (files keep their owners). */
export async function copyLayersForVfs(lowerDirs: string[], target: string, options: { plainBottomLayer?: boolean } = {}): Promise<void> {
  const { runInUserNamespace } = await import('../idmap/userns.js');
  if (lowerDirs.length === 1 && options.plainBottomLayer) {
    // One layer without whiteouts or opaque markers: a plain copy is the whole job, and cp
    // alone starts ~40 ms sooner than the copy helper (a Node process).
    const cp = await runInUserNamespace(['cp', '-a', '--reflink=auto', '--', `${lowerDirs[0]}/.`, `${target}/`], { stdio: ['ignore', 'ignore', 'pipe'], reject: false });
    if (cp.code !== 0) throw new NookError(`vfs: copying the image's layer failed: ${cp.stderr.trim().split('\n').pop() ?? `exit ${cp.code}`}`);
    return;
  }
  // Its launcher (src/cli/vfs-copy.cts: the bundle with a code cache, or ./vfs-copy.ts itself),
  // through the parent directory: the same path from the CLI's bundle in dist/src/cli/.
  const script = new URL('../cli/vfs-copy.cjs', import.meta.url).pathname;
  const result = await runInUserNamespace([process.execPath, script, target, ...[...lowerDirs].reverse()], { stdio: ['ignore', 'ignore', 'pipe'], reject: false });
  if (result.code !== 0) throw new NookError(`vfs: copying the image's layers failed: ${result.stderr.trim().split('\n').pop() ?? `exit ${result.code}`}`);
}
