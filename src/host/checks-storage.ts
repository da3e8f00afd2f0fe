/**
 * Doctor checks about storage: which overlay works, the driver nook will use,
 * and the filesystem the storage root lives on.
 */
import { ok, problem, type Check } from './check.js';
import { installCommand } from './distribution.js';
import { decideStorageDriver } from './storage-driver.js';

/** 6.2.0-39-generic -> [6, 2] */
export function kernelVersion(release: string): [number, number] | null {
  const match = /^(\d+)\.(\d+)/.exec(release);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

function localRootFix(user: string): string {
  return `keep nook's storage on a local disk: nook --root /var/tmp/${user}/nook ... (or set XDG_DATA_HOME to a directory on a local disk)`;
}

export const checkKernelOverlay: Check = async (facts) => {
  const id = 'kernel-overlay';
  const title = 'kernel overlay in a user namespace';
  const [storage, filesystem] = await Promise.all([facts.storage(), facts.storageFilesystem()]);
  if (storage.kernelOverlay.supported) return ok(id, title, storage.kernelOverlay.reason);
  const fallback = storage.fuseOverlayfs && storage.devFuse.usable ? 'fuse-overlayfs' : 'vfs';
  const version = kernelVersion(facts.view.kernelRelease);
  const old = version !== null && (version[0] < 5 || (version[0] === 5 && version[1] < 11));
  const fix = filesystem.network
    ? localRootFix(facts.user)
    : old
      ? `kernel ${facts.view.kernelRelease} predates 5.11, the first to mount overlay with userxattr in a user namespace: upgrade the kernel (fuse-overlayfs works meanwhile)`
      : `nothing to do if fuse-overlayfs works (see below); the kernel refusal comes from a distribution or security-module setting`;
  return problem('warn', id, title, storage.kernelOverlay.reason, `the fast storage driver: nook uses ${fallback} instead`, fix);
};

export const checkFuseOverlayfs: Check = async (facts) => {
  const id = 'fuse-overlayfs';
  const title = 'fuse-overlayfs and /dev/fuse';
  const storage = await facts.storage();
  // Only a loss when the kernel overlay is not there to take its place.
  const needed = !storage.kernelOverlay.supported;
  const status = needed ? 'warn' : 'ok';
  const breaks = 'the overlay storage drivers: nook falls back to vfs, which copies the whole image for every container (slow, disk-hungry)';
  const notNeeded = ' (not needed: the kernel overlay works)';
  if (!storage.fuseOverlayfs) {
    const detail = 'fuse-overlayfs is not installed';
    return status === 'ok' ? ok(id, title, detail + notNeeded) : problem(status, id, title, detail, breaks, installCommand(await facts.distribution(), 'fuse-overlayfs'));
  }
  if (!storage.devFuse.usable) {
    const code = storage.devFuse.code;
    const detail = `/dev/fuse cannot be opened (${code})`;
    const fix =
      code === 'ENOENT' || code === 'ENXIO' || code === 'ENODEV'
        ? 'sudo modprobe fuse   # and in a container: --device /dev/fuse'
        : 'sudo chmod 0666 /dev/fuse   # its usual mode; udev restores it at boot from /usr/lib/udev/rules.d/50-udev-default.rules';
    return status === 'ok' ? ok(id, title, detail + notNeeded) : problem(status, id, title, detail, breaks, fix);
  }
  return ok(id, title, `${storage.fuseOverlayfs}; /dev/fuse is usable`);
};

export const checkStorageDriver: Check = async (facts) => {
  const id = 'storage-driver';
  const title = 'storage driver';
  const choice = decideStorageDriver(await facts.storage());
  if (choice.driver === 'vfs') {
    return problem('warn', id, title, `vfs: ${choice.reason}`, 'fast container creation: every container copies its whole image', 'make the kernel overlay or fuse-overlayfs usable (see above)');
  }
  return ok(id, title, `${choice.driver}: ${choice.reason}`);
};

export const checkStorageFilesystem: Check = async (facts) => {
  const id = 'storage-filesystem';
  const title = 'storage directory';
  const fs = await facts.storageFilesystem();
  const where = fs.exists ? fs.root : `${fs.root} (not created yet; ${fs.examined} examined)`;
  if (fs.type === null) {
    return problem('fail', id, title, `${fs.root}: no existing directory on its path`, 'pulling images and creating containers', localRootFix(facts.user));
  }
  if (fs.network) {
    return problem(
      'fail',
      id,
      title,
      `${where} is on ${fs.name}`,
      `images and containers: a ${fs.name} server refuses files owned by subordinate ids and has no overlay upper directories`,
      localRootFix(facts.user),
    );
  }
  if (!fs.writable) {
    return problem('fail', id, title, `${where} is not writable by ${facts.user}`, 'pulling images and creating containers', fs.exists
        ? `sudo chown -R ${facts.user} ${fs.root}   # or: nook --root DIR with a directory of your own`
        : `sudo install -d -o ${facts.user} -m 0700 ${fs.root}   # or: nook --root DIR with a directory of your own`);
  }
  return ok(id, title, `${where} on ${fs.name}`);
};
