/**
 * Which storage driver nook uses, and why: the kernel's overlay when it
 * mounts in a user namespace (fast, no daemon), else fuse-overlayfs when it is
 * installed and /dev/fuse can be opened, else vfs (a full copy of the image
 * per container: slow and big, but it works everywhere).
 */
import { NookError } from '../lib/errors.js';
import type { NookPaths } from '../lib/paths.js';
import { probeKernelOverlay, type KernelOverlayProbe } from './kernel-overlay.js';
import { realHostView, type DeviceAccess, type HostView } from './view.js';

export type StorageDriverName = 'overlay' | 'fuse-overlayfs' | 'vfs';

export const storageDriverNames: readonly StorageDriverName[] = ['overlay', 'fuse-overlayfs', 'vfs'];

export interface StorageDriverChoice {
  driver: StorageDriverName;
  reason: string;
  /** options for the kernel overlay mount (['userxattr']), [] for the others */
  mountOptions: string[];
  /** absolute path of fuse-overlayfs when that driver is chosen */
  fuseOverlayfsPath: string | null;
}

export interface StorageFacts {
  kernelOverlay: KernelOverlayProbe;
  fuseOverlayfs: string | null;
  devFuse: DeviceAccess;
}

function fuseProblem(facts: StorageFacts): string | null {
  if (!facts.fuseOverlayfs) return 'fuse-overlayfs is not installed';
  if (!facts.devFuse.usable) return `/dev/fuse cannot be opened (${facts.devFuse.code})`;
  return null;
}

/** The decision alone, from facts: pure, for unit tests. `requested` is the user's --storage-driver. */
export function decideStorageDriver(facts: StorageFacts, requested?: StorageDriverName): StorageDriverChoice {
  // callers pass what the user typed: check it once here rather than trust a cast
  if (requested !== undefined && !storageDriverNames.includes(requested)) {
    throw new NookError(`unknown storage driver ${String(requested)}: use ${storageDriverNames.join(', ')}`);
  }
  const overlay: StorageDriverChoice = { driver: 'overlay', reason: facts.kernelOverlay.reason, mountOptions: facts.kernelOverlay.mountOptions, fuseOverlayfsPath: null };
  const fuseIssue = fuseProblem(facts);
  const fuse = (why: string): StorageDriverChoice => ({ driver: 'fuse-overlayfs', reason: why, mountOptions: [], fuseOverlayfsPath: facts.fuseOverlayfs });
  const vfs = (why: string): StorageDriverChoice => ({ driver: 'vfs', reason: why, mountOptions: [], fuseOverlayfsPath: null });

  if (requested === 'overlay') {
    if (!facts.kernelOverlay.supported) throw new NookError(`storage driver overlay is not usable here: ${facts.kernelOverlay.reason}`);
    return { ...overlay, reason: `requested; ${overlay.reason}` };
  }
  if (requested === 'fuse-overlayfs') {
    if (fuseIssue) throw new NookError(`storage driver fuse-overlayfs is not usable here: ${fuseIssue}`);
    return fuse(`requested; ${facts.fuseOverlayfs} and /dev/fuse are usable`);
  }
  if (requested === 'vfs') return vfs('requested');

  if (facts.kernelOverlay.supported) return overlay;
  if (!fuseIssue) return fuse(`the kernel overlay is not usable (${facts.kernelOverlay.reason}); ${facts.fuseOverlayfs} and /dev/fuse are usable`);
  return vfs(`the kernel overlay is not usable (${facts.kernelOverlay.reason}) and ${fuseIssue}: every container gets a full copy of its image`);
}

/**
 * An image whose layers keep whiteouts as `.wh.` files (the store's file
 * system refused overlay's 0/0 devices or its opaque xattr when they were
 * extracted) reads right only through fuse-overlayfs: the kernel's overlay
 * and vfs would show the `.wh.` files and the deleted files both.
 */
export function driverForWhiteouts(choice: StorageDriverChoice, whiteoutFormat: 'overlay' | 'aufs', facts: StorageFacts, requested?: StorageDriverName): StorageDriverChoice {
  if (whiteoutFormat === 'overlay' || choice.driver === 'fuse-overlayfs') return choice;
  const why = "the image's layers keep deleted files as .wh. whiteout files (the store's file system refused overlay whiteouts when they were extracted), which only fuse-overlayfs reads";
  if (requested !== undefined) throw new NookError(`storage driver ${requested} cannot run this image: ${why}; use --storage-driver fuse-overlayfs`);
  const fuseIssue = fuseProblem(facts);
  if (fuseIssue) throw new NookError(`cannot run this image: ${why}, and ${fuseIssue}`);
  return { driver: 'fuse-overlayfs', reason: why, mountOptions: [], fuseOverlayfsPath: facts.fuseOverlayfs };
}

export async function readStorageFacts(paths: NookPaths, view: HostView, refresh = false): Promise<StorageFacts> {
  const [kernelOverlay, fuseOverlayfs, devFuse] = await Promise.all([
    probeKernelOverlay(paths, { view, refresh }),
    view.which('fuse-overlayfs'),
    view.openDevice('/dev/fuse'),
  ]);
  return { kernelOverlay, fuseOverlayfs, devFuse };
}

/**
 * The storage driver for this machine and storage root. The kernel overlay
 * answer is cached in the run root, so this is cheap on every run.
 */
export async function chooseStorageDriver(paths: NookPaths, options: { requested?: StorageDriverName; view?: HostView } = {}): Promise<StorageDriverChoice & { facts: StorageFacts }> {
  const facts = await readStorageFacts(paths, options.view ?? realHostView());
  return { ...decideStorageDriver(facts, options.requested), facts };
}
