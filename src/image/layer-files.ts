/**
 * Reading a file of an image straight from its extracted layers, without
 * mounting anything (for /etc/passwd and /etc/group lookups before a container
 * starts). Honours the on-disk whiteout forms of ./whiteout.ts: a 0/0 device
 * or `.wh.NAME` hides NAME in the layers below, an opaque directory hides
 * everything below it. Symlinks are not followed (a symlinked /etc/passwd
 * reads as absent), so nothing outside the layers is ever read.
 */
import { lstatSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { Syscalls } from '../syscalls/syscalls.js';
import { isWhiteoutDevice, opaqueMarker, overlayOpaqueXattr, whiteoutPrefix } from './whiteout.js';

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * The content of `containerPath` in the merged view of `layerDirs` (top-most
 * first, as ImageForRun.layerDirs), or null when it does not exist or is not
 * a regular file. `syscalls` is needed to see opaque directories' xattrs.
 */
export function readImageFile(layerDirs: readonly string[], containerPath: string, syscalls?: Syscalls): string | null {
  const components = containerPath.split('/').filter((c) => c !== '' && c !== '.');
  if (components.length === 0 || components.includes('..')) return null;
  for (const layer of layerDirs) {
    let dir = layer;
    let hidden = false;
    let opaque = false;
    for (let i = 0; i < components.length; i++) {
      const name = components[i]!;
      // an opaque directory on the way hides the layers below, whatever this layer has under it
      if (i > 0 && (lstatOrNull(join(dir, opaqueMarker)) || (syscalls && safeXattr(syscalls, dir) === 'y'))) opaque = true;
      if (lstatOrNull(join(dir, `${whiteoutPrefix}${name}`))) {
        hidden = true;
        break;
      }
      const path = join(dir, name);
      const st = lstatOrNull(path);
      if (!st) break;
      if (isWhiteoutDevice(st)) {
        hidden = true;
        break;
      }
      if (i === components.length - 1) {
        if (!st.isFile()) return null;
        try {
          return readFileSync(path, 'utf8');
        } catch {
          return null;
        }
      }
      if (!st.isDirectory()) return null; // a file or symlink where a directory is needed
      dir = path;
    }
    if (hidden || opaque) return null;
  }
  return null;
}

function safeXattr(syscalls: Syscalls, dir: string): string | undefined {
  try {
    return syscalls.lgetxattr(dir, overlayOpaqueXattr)?.toString();
  } catch {
    return undefined;
  }
}
