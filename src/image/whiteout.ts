/**
 * How deletions recorded in a layer are kept on disk, in the form both
 * storage drivers read from a lower directory (see docs/storage.md, checked
 * with real mounts in test/integration/image-whiteout.test.ts):
 *
 *  - a deleted file or directory NAME (tar entry `.wh.NAME`) becomes a
 *    character device 0/0 named NAME: the kernel's overlay and fuse-overlayfs
 *    both treat it as a whiteout. Linux >= 5.8 lets an unprivileged process
 *    create exactly this device (vfs: "allow unprivileged whiteout creation"),
 *    inside a user namespace too; no other device can be created rootless.
 *  - an opaque directory (tar entry `DIR/.wh..wh..opq`) gets the xattr
 *    user.overlay.opaque="y": the kernel's overlay reads user.overlay.* when
 *    mounted with `userxattr` (the only way it mounts in a user namespace),
 *    and fuse-overlayfs (>= 1.? ; 1.10 checked) reads user.overlay.opaque too.
 *
 * Fallback ("aufs" format) when the filesystem under the store refuses the
 * device or the xattr: keep the tar's own `.wh.NAME` / `.wh..wh..opq` files,
 * which fuse-overlayfs understands and the kernel's overlay does not. The layer
 * record says which format a layer uses (LayerRecord.whiteoutFormat) so the
 * storage driver can insist on fuse-overlayfs.
 */
export const whiteoutPrefix = '.wh.';
export const opaqueMarker = '.wh..wh..opq';
/** aufs bookkeeping entries (.wh..wh.plnk, .wh..wh.aufs): meaningless outside aufs */
export const aufsMetaPrefix = '.wh..wh.';
export const overlayOpaqueXattr = 'user.overlay.opaque';

export type WhiteoutFormat = 'overlay' | 'aufs';

/** xattrs a layer may not set itself: they would forge overlay or fuse-overlayfs metadata (opaque dirs, redirects, faked owners and modes). */
export function isForbiddenLayerXattr(name: string): boolean {
  return (
    name.startsWith('user.overlay.') ||
    name.startsWith('trusted.overlay.') ||
    name.startsWith('user.fuseoverlayfs.') ||
    name.startsWith('user.containers.')
  );
}

/** True for a stat of an overlay whiteout (character device 0/0). */
export function isWhiteoutDevice(stat: { isCharacterDevice(): boolean; rdev: number }): boolean {
  return stat.isCharacterDevice() && stat.rdev === 0;
}
