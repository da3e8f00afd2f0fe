/**
 * Does the kernel's overlayfs mount inside a user namespace, on the
 * filesystem that holds nook's storage? The kernel version alone does not
 * tell (distribution patches, the filesystem under the upper directory,
 * lockdown settings), so we try: util-linux `unshare -Urm` (single-threaded,
 * as nook's executor) mounts an overlay with `userxattr` in a temporary
 * directory under the storage root, writes a file and deletes a lower one
 * (which needs a whiteout). The answer is cached in the run root, keyed by
 * kernel release and filesystem type, because `info` and the storage-driver
 * choice need it on every run and the probe costs ~10 ms.
 */
import { readFileSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { writeJsonAtomic } from '../lib/atomic.js';
import { ensureDir, type NookPaths } from '../lib/paths.js';
import { firstLine } from './userns.js';
import { realHostView, type HostView } from './view.js';

export interface KernelOverlayProbe {
  supported: boolean;
  /** one line: why (not) */
  reason: string;
  /** mount options nook must pass to the kernel overlay (userxattr) */
  mountOptions: string[];
  kernelRelease: string;
  /** statfs f_type of the directory probed (the storage root's filesystem) */
  fsType: number | null;
  /** the answer came from the cache file */
  cached: boolean;
}

const cacheVersion = 1;
const cacheFileName = 'kernel-overlay.json';

/** The probe, run as `sh -c SCRIPT sh DIR` inside `unshare -Urm`; markers on stdout tell how far it got. */
const probeScript = `
set -e
echo nook-probe:userns
cd "$1"
mkdir lower upper work merged lower/dir
echo lower > lower/file
mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work,userxattr merged
echo nook-probe:mounted
echo new > merged/new
rm merged/file
rmdir merged/dir
test -c upper/file
echo nook-probe:whiteouts
umount merged
`;

interface CacheFile {
  version: number;
  kernelRelease: string;
  fsType: number | null;
  supported: boolean;
  reason: string;
}

/** Removes the probe directory; overlay leaves work/work with mode 000, which rm alone cannot enter. */
async function removeProbeDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
    return;
  } catch {
    // make every directory enterable, then retry
  }
  const open = async (path: string): Promise<void> => {
    const info = await lstat(path).catch(() => null);
    if (!info?.isDirectory()) return;
    await chmod(path, 0o700).catch(() => undefined);
    for (const name of await readdir(path).catch(() => [] as string[])) await open(join(path, name));
  };
  await open(dir);
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

async function readCache(file: string, kernelRelease: string, fsType: number | null): Promise<CacheFile | null> {
  try {
    // synchronous: read on every start, before anything else uses Node's thread pool
    const data = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (data.version === cacheVersion && data.kernelRelease === kernelRelease && data.fsType === fsType && typeof data.supported === 'boolean') return data;
  } catch {
    // missing or damaged: probe again
  }
  return null;
}

function writeCache(file: string, data: CacheFile): void {
  try {
    writeJsonAtomic(file, data, { mode: 0o600, durable: false });
  } catch {
    // a cache that cannot be written only costs a probe next time
  }
}

/** A directory on the storage root's filesystem to probe in, and that filesystem's type. */
async function probeParent(paths: NookPaths, view: HostView): Promise<{ dir: string; fsType: number | null }> {
  for (const dir of [paths.root, tmpdir()]) {
    try {
      ensureDir(dir);
      const fs = await view.statfs(dir);
      return { dir, fsType: fs?.type ?? null };
    } catch {
      // not creatable: try the next one
    }
  }
  return { dir: tmpdir(), fsType: null };
}

export interface ProbeOptions {
  view?: HostView;
  /** ignore the cached answer (doctor --refresh, tests) */
  refresh?: boolean;
}

export async function probeKernelOverlay(paths: NookPaths, options: ProbeOptions = {}): Promise<KernelOverlayProbe> {
  const view = options.view ?? realHostView();
  const kernelRelease = view.kernelRelease;
  const { dir: parent, fsType } = await probeParent(paths, view);
  const answer = (supported: boolean, reason: string, cached: boolean): KernelOverlayProbe => ({
    supported,
    reason,
    mountOptions: supported ? ['userxattr'] : [],
    kernelRelease,
    fsType,
    cached,
  });

  let cacheFile: string | null = null;
  try {
    cacheFile = join(ensureDir(paths.runRoot), cacheFileName);
  } catch {
    cacheFile = null;
  }
  if (cacheFile && !options.refresh) {
    const cached = await readCache(cacheFile, kernelRelease, fsType);
    if (cached) return answer(cached.supported, cached.reason, true);
  }

  const unshare = await view.which('unshare');
  // Without unshare we cannot know: say no, and do not cache a guess.
  if (!unshare) return answer(false, 'not probed: util-linux unshare is not installed', false);

  const dir = await mkdtemp(join(parent, '.overlay-probe-'));
  let supported: boolean;
  let reason: string;
  try {
    const result = await view.run(unshare, ['--user', '--map-root-user', '--mount', 'sh', '-c', probeScript, 'sh', dir], { timeoutMs: 5000 });
    const mounted = result.stdout.includes('nook-probe:mounted');
    if (result.failure) {
      // a timeout or a spawn failure is not an answer about the kernel: do not cache it
      return answer(false, `probe did not finish: ${result.failure}`, false);
    }
    if (!result.stdout.includes('nook-probe:userns')) {
      // no user namespace at all (a sysctl, AppArmor, seccomp): that can change without a new kernel
      return answer(false, `not probed: cannot create a user namespace: ${firstLine(result.stderr) || `exit status ${result.exitCode}`}`, false);
    }
    if (result.exitCode === 0) {
      supported = true;
      reason = `kernel ${kernelRelease} mounts overlay with userxattr in a user namespace`;
    } else if (!mounted) {
      supported = false;
      reason = `kernel ${kernelRelease} refuses overlay in a user namespace: ${firstLine(result.stderr) || `exit status ${result.exitCode}`}`;
    } else {
      supported = false;
      reason = `kernel overlay mounts in a user namespace but cannot create whiteouts: ${firstLine(result.stderr) || 'deleting a lower file failed'}`;
    }
  } finally {
    await removeProbeDir(dir);
  }
  if (cacheFile) writeCache(cacheFile, { version: cacheVersion, kernelRelease, fsType, supported, reason });
  return answer(supported, reason, false);
}
