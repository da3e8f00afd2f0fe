/**
 * The vfs storage driver's copy: the image's layers applied one over the
 * other into a plain directory, whiteouts and opaque directories honoured, as
 * the overlay drivers would show them. Run as root of the user's namespace
 * (`node vfs-copy.js TARGET LAYER...`, layers bottom-most first) so that
 * files owned by subordinate ids keep their owners.
 */
import { chmodSync, copyFileSync, constants, lchownSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, type Stats } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { linuxSyscalls, type Syscalls } from '../syscalls/syscalls.js';
import { isWhiteoutDevice, overlayOpaqueXattr } from '../image/whiteout.js';

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function copyMetadata(stat: Stats, target: string): void {
  lchownSync(target, stat.uid, stat.gid);
  if (!stat.isSymbolicLink()) {
    chmodSync(target, stat.mode & 0o7777);
    utimesSync(target, stat.atime, stat.mtime);
  }
}

function applyLayer(source: string, target: string, sys: Syscalls): void {
  for (const name of readdirSync(source)) {
    const from = join(source, name);
    const to = join(target, name);
    const stat = lstatSync(from);
    if (isWhiteoutDevice(stat)) {
      rmSync(to, { recursive: true, force: true });
      continue;
    }
    const existing = lstatOrNull(to);
    if (stat.isDirectory()) {
      const opaque = sys.lgetxattr(from, overlayOpaqueXattr)?.toString() === 'y';
      if (existing && (!existing.isDirectory() || opaque)) rmSync(to, { recursive: true, force: true });
      if (!existing || !existing.isDirectory() || opaque) mkdirSync(to);
      applyLayer(from, to, sys);
      copyMetadata(stat, to);
      continue;
    }
    if (existing) rmSync(to, { recursive: true, force: true });
    if (stat.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else if (stat.isFile()) copyFileSync(from, to, constants.COPYFILE_FICLONE);
    else continue; // fifos and sockets: not in images worth copying
    copyMetadata(stat, to);
  }
}

/**
 * The bottom-most layer, into the empty target, by `cp -a`: ~3x faster than
 * file by file from here, and it keeps hard links. Nothing lies below it, so
 * its whiteouts hide nothing and its opaque markers mean nothing: both are
 * removed afterwards. False when cp fails (the target is emptied again).
 */
function copyBottomLayer(layer: string, target: string, sys: Syscalls): boolean {
  const cp = spawnSync('cp', ['-a', '--reflink=auto', '--', `${layer}/.`, `${target}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (cp.status !== 0) {
    for (const name of readdirSync(target)) rmSync(join(target, name), { recursive: true, force: true });
    return false;
  }
  dropOverlayMarkers(target, sys);
  return true;
}

function dropOverlayMarkers(dir: string, sys: Syscalls): void {
  if (sys.lgetxattr(dir, overlayOpaqueXattr) !== null) sys.lremovexattr(dir, overlayOpaqueXattr);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) dropOverlayMarkers(path, sys);
    else if (entry.isCharacterDevice() && isWhiteoutDevice(lstatSync(path))) rmSync(path);
  }
}

async function main(): Promise<void> {
  const [target, ...layers] = process.argv.slice(2);
  if (!target || layers.length === 0) throw new Error('usage: vfs-copy TARGET LAYER...');
  const sys = await linuxSyscalls();
  const [bottom, ...above] = layers;
  const targetEmpty = readdirSync(target).length === 0;
  if (!targetEmpty || !copyBottomLayer(bottom!, target, sys)) applyLayer(bottom!, target, sys);
  for (const layer of above) applyLayer(layer, target, sys);
}

main().catch((error: unknown) => {
  process.stderr.write(`vfs copy: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
