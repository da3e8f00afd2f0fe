/**
 * Writes one layer's tar stream into an empty directory, refusing anything
 * that would write outside it, and converting whiteouts to the on-disk form of
 * ./whiteout.ts.
 *
 * Runs inside nook's user namespace as its root (./extract-main.ts), so that
 * chown() to a file's owner in the tar lands on the host id that owner maps to.
 *
 * The rules, each a one-line refusal of the whole layer (nothing is kept: the
 * caller deletes the directory):
 *  - a path that is absolute, has a ".." component, a NUL, a component over
 *    255 bytes or a total over 4095 bytes;
 *  - an entry whose parent path goes through a symlink (`evil -> /etc` then
 *    `evil/passwd`): parents are walked with lstat, never followed;
 *  - a hardlink whose target is absolute, has "..", goes through a symlink, is
 *    a directory or is not (yet) in this layer;
 *  - a file owner outside the user namespace's ids (unless ignoreChownErrors);
 *  - a file larger than the free space (before writing it);
 *  - malformed tar (./tar-reader.ts).
 * Symlinks themselves may point anywhere (`/bin/sh -> busybox` is normal):
 * they are never followed while unpacking.
 * Device nodes cannot be made rootless: they are skipped with a note (the
 * container's /dev is made by nook); 0/0 character devices are whiteouts.
 */
import { closeSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, writeSync, chmodSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { NookError } from '../lib/errors.js';
import type { Syscalls } from '../syscalls/syscalls.js';
import { readTar, type TarEntry } from './tar-reader.js';
import { aufsMetaPrefix, isForbiddenLayerXattr, opaqueMarker, overlayOpaqueXattr, whiteoutPrefix, type WhiteoutFormat } from './whiteout.js';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const maxComponentBytes = 255;
const maxPathBytes = 4095;

export interface IdRange {
  /** first id inside the namespace */
  inside: number;
  count: number;
}

export interface UnpackOptions {
  /** what is being unpacked, for messages: "layer sha256:0123456789ab" */
  what: string;
  syscalls: Syscalls;
  /** chown entries to their owners in the tar (inside nook's user namespace, or as real root) */
  chown: boolean;
  /** the ids usable for chown (from /proc/self/uid_map), to refuse unmapped owners clearly */
  uidRanges?: IdRange[];
  gidRanges?: IdRange[];
  /** give files whose owner is outside the mapping to root instead of refusing the layer */
  ignoreChownErrors?: boolean;
  /** how the refusal of an unmapped owner suggests fixing it */
  unmappedHint?: string;
}

export interface UnpackResult {
  entries: number;
  /** bytes of regular file data written */
  bytes: number;
  whiteouts: number;
  opaqueDirs: number;
  whiteoutFormat: WhiteoutFormat;
  /** things skipped or changed, for the user ("skipped 3 device nodes") */
  notes: string[];
}

interface PendingDir {
  path: string;
  mode: number;
  mtime: number;
}

/** Parses /proc/PID/uid_map text into the ranges usable inside. */
export function parseIdMap(text: string): IdRange[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isFinite))
    .map(([inside, , count]) => ({ inside: inside!, count: count! }));
}

/** "0-65536" (adjacent ranges merged), "0, 1000-1999", or "none". */
export function describeRanges(ranges: IdRange[]): string {
  if (ranges.length === 0) return 'none';
  const merged: IdRange[] = [];
  for (const r of ranges.slice().sort((a, b) => a.inside - b.inside)) {
    const last = merged[merged.length - 1];
    if (last && last.inside + last.count === r.inside) last.count += r.count;
    else merged.push({ ...r });
  }
  return merged.map((r) => (r.count === 1 ? `${r.inside}` : `${r.inside}-${r.inside + r.count - 1}`)).join(', ');
}

function inRanges(id: number, ranges: IdRange[]): boolean {
  return ranges.some((r) => id >= r.inside && id < r.inside + r.count);
}

function short(path: string): string {
  return JSON.stringify(path.length > 120 ? `${path.slice(0, 120)}...` : path);
}

/**
 * Splits an archive path into safe components ([] is the layer's root), or
 * throws. `kind` names the field in messages ("path", "hardlink target").
 */
export function safeComponents(raw: string, what: string, kind = 'path'): string[] {
  const refuse = (reason: string) => new NookError(`${what}: refusing ${kind} ${short(raw)}: ${reason}`);
  if (raw.includes('\0')) throw refuse('it contains a NUL byte');
  if (raw.startsWith('/')) throw refuse('it is absolute');
  if (Buffer.byteLength(raw) > maxPathBytes) throw refuse(`it is longer than ${maxPathBytes} bytes (${Buffer.byteLength(raw)})`);
  const components = raw.split('/').filter((c) => c !== '' && c !== '.');
  for (const c of components) {
    if (c === '..') throw refuse('it has a ".." component');
    if (Buffer.byteLength(c) > maxComponentBytes) throw refuse(`a name in it is longer than ${maxComponentBytes} bytes`);
  }
  return components;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Unpacks `source` (an uncompressed tar stream) into `root`, which must exist and be empty. */
export async function unpackLayer(source: AsyncIterable<Buffer>, rootDir: string, options: UnpackOptions): Promise<UnpackResult> {
  const { what, syscalls } = options;
  // paths are built by concatenation below: the root must be in normal form
  const root = resolve(rootDir);
  // the permission bits given to open() are final only without a umask
  const umask = process.umask();
  const result: UnpackResult = { entries: 0, bytes: 0, whiteouts: 0, opaqueDirs: 0, whiteoutFormat: 'overlay', notes: [] };
  const dirs = new Map<string, PendingDir>();
  const skippedDevices: string[] = [];
  const skippedXattrs = new Set<string>();
  let squashedOwners = 0;
  let freeBytesChecked = 0;

  /**
   * Directories known to be real directories of this layer (created here, or
   * checked with lstat): most entries share their parent with the previous
   * one, and checking every component of every path again cost a third of
   * the extraction. Only this function removes anything from the tree, and it
   * forgets what it removes, so the set never names a path that became a
   * symlink since.
   */
  const knownDirs = new Set<string>([root]);

  /** Walks to the parent of `components`, creating missing directories, never following a symlink. */
  const parentOf = (components: string[], entryPath: string): string => {
    if (components.length === 1) return root;
    const parentPath = `${root}/${components.slice(0, -1).join('/')}`;
    if (knownDirs.has(parentPath)) return parentPath;
    let current = root;
    for (let i = 0; i < components.length - 1; i++) {
      const next = `${current}/${components[i]!}`;
      current = next;
      if (knownDirs.has(next)) continue;
      const st = lstatOrNull(next);
      if (!st) {
        mkdirSync(next, { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new NookError(`${what}: refusing ${short(entryPath)}: it would be written through the symlink ${short(components.slice(0, i + 1).join('/'))}`);
      } else if (!st.isDirectory()) {
        throw new NookError(`${what}: refusing ${short(entryPath)}: ${short(components.slice(0, i + 1).join('/'))} is not a directory`);
      }
      knownDirs.add(next);
    }
    return current;
  };

  const forget = (path: string) => {
    knownDirs.delete(path);
    const below = `${path}/`;
    for (const dir of knownDirs) if (dir.startsWith(below)) knownDirs.delete(dir);
  };

  const removeExisting = (path: string, keepDirectory: boolean): Stats | null => {
    const st = lstatOrNull(path);
    if (!st) return null;
    if (keepDirectory && st.isDirectory()) return st;
    forget(path);
    rmSync(path, { recursive: true, force: true }); // removes a symlink itself, never its target
    return null;
  };

  /** Runs `create` (which must fail with EEXIST rather than follow or reuse what is there); on EEXIST removes the old entry and runs it again. */
  const createReplacing = <T>(path: string, create: () => T): T => {
    try {
      return create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      removeExisting(path, false);
      return create();
    }
  };

  /**
   * The owner a file created here gets by itself (the helper's own ids, root
   * of the user namespace), or undefined when that is not certain: a file
   * created with the owner the tar asks for needs no chown (one system call
   * less per file). A setgid directory would give new files its group, and
   * its subdirectories its setgid bit: then every entry is chowned.
   */
  const creator = ((): { uid: number; gid: number } | undefined => {
    if (!options.chown || !process.geteuid || !process.getegid) return undefined;
    const st = lstatSync(root);
    return (st.mode & 0o2000) === 0 && st.gid === process.getegid() ? { uid: process.geteuid(), gid: process.getegid() } : undefined;
  })();
  /** Whether `owner` is not already the owner of a file this extraction has just created. */
  const needsChown = (owner: { uid: number; gid: number }): boolean => creator === undefined || owner.uid !== creator.uid || owner.gid !== creator.gid;

  const ownerFor = (entry: TarEntry, path: string): { uid: number; gid: number } => {
    const uidOk = !options.uidRanges || inRanges(entry.uid, options.uidRanges);
    const gidOk = !options.gidRanges || inRanges(entry.gid, options.gidRanges);
    if (uidOk && gidOk) return { uid: entry.uid, gid: entry.gid };
    if (options.ignoreChownErrors) {
      squashedOwners++;
      return { uid: uidOk ? entry.uid : 0, gid: gidOk ? entry.gid : 0 };
    }
    const [kind, id, ranges] = !uidOk ? ['uid', entry.uid, options.uidRanges!] as const : ['gid', entry.gid, options.gidRanges!] as const;
    throw new NookError(
      `${what}: ${short(path)} is owned by ${kind} ${id}, outside the ${kind}s available in nook's user namespace (${describeRanges(ranges)})${options.unmappedHint ? `; ${options.unmappedHint}` : ''}`,
    );
  };

  const applyXattrs = (path: string, entry: TarEntry) => {
    for (const [name, value] of entry.xattrs) {
      if (isForbiddenLayerXattr(name) || name.startsWith('trusted.') || name === 'security.selinux') {
        skippedXattrs.add(name);
        continue;
      }
      try {
        syscalls.lsetxattr(path, name, value);
      } catch {
        skippedXattrs.add(name);
      }
    }
  };

  const makeWhiteout = (dir: string, name: string) => {
    const target = join(dir, name);
    removeExisting(target, false);
    result.whiteouts++;
    if (result.whiteoutFormat === 'overlay') {
      try {
        syscalls.mknod(target, S_IFCHR, 0, 0);
        return;
      } catch {
        switchToAufs();
      }
    }
    closeSync(openSync(join(dir, `${whiteoutPrefix}${name}`), 'w', 0o600));
  };

  const makeOpaque = (dir: string) => {
    result.opaqueDirs++;
    if (result.whiteoutFormat === 'overlay') {
      try {
        syscalls.lsetxattr(dir, overlayOpaqueXattr, Buffer.from('y'));
        return;
      } catch {
        switchToAufs();
      }
    }
    closeSync(openSync(join(dir, opaqueMarker), 'w', 0o600));
  };

  const switchToAufs = () => {
    if (result.whiteoutFormat === 'aufs') return;
    result.whiteoutFormat = 'aufs';
    result.notes.push('the filesystem under the store refused overlay whiteouts (0/0 device or user.overlay.opaque xattr); whiteouts are kept as .wh. files, which only fuse-overlayfs reads');
  };

  for await (const { entry, body, data } of readTar(source, { what })) {
    result.entries++;
    const components = safeComponents(entry.path, what);
    const base = components[components.length - 1];

    // Whiteouts: the name says what to hide; the entry's own type is irrelevant.
    if (base !== undefined && base.startsWith(whiteoutPrefix)) {
      const dir = parentOf(components, entry.path);
      if (base === opaqueMarker) makeOpaque(dir);
      else if (!base.startsWith(aufsMetaPrefix)) {
        const hidden = base.slice(whiteoutPrefix.length);
        if (hidden === '' || hidden === '.' || hidden === '..') throw new NookError(`${what}: refusing whiteout ${short(entry.path)}: it names no file`);
        makeWhiteout(dir, hidden);
      }
      continue;
    }

    const parent = components.length === 0 ? root : parentOf(components, entry.path);
    const path = components.length === 0 ? root : `${parent}/${base!}`;
    if (components.length === 0 && entry.type !== 'directory') throw new NookError(`${what}: refusing ${short(entry.path)}: the layer's root must be a directory`);
    const owner = options.chown ? ownerFor(entry, entry.path) : undefined;

    switch (entry.type) {
      case 'directory': {
        // an existing directory (the root, a parent made for an earlier entry, a repeated entry) may have another owner
        let created = false;
        if (components.length > 0 && !knownDirs.has(path)) {
          try {
            mkdirSync(path, { mode: 0o700 });
            created = true;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
            if (!removeExisting(path, true)) {
              mkdirSync(path, { mode: 0o700 });
              created = true;
            }
          }
          knownDirs.add(path);
        }
        if (owner && (!created || needsChown(owner))) lchownSync(path, owner.uid, owner.gid);
        applyXattrs(path, entry);
        dirs.set(path, { path, mode: entry.mode, mtime: entry.mtime });
        break;
      }
      case 'file': {
        if (entry.size > 64 * 1024 * 1024 && entry.size > freeBytesChecked) {
          const fs = syscalls.statfs(root);
          const free = Number(fs.blocksAvailable) * fs.blockSize;
          if (entry.size > free) throw new NookError(`${what}: ${short(entry.path)} declares ${entry.size} bytes, more than the ${free} bytes free where the store is`);
          freeBytesChecked = free;
        }
        // O_EXCL: never through a symlink, never into an existing file. The
        // helper runs with umask 0, so the permission bits are final already.
        const fd = createReplacing(path, () => openSync(path, 'wx', entry.mode & 0o777));
        try {
          const write = (chunk: Buffer) => {
            let written = 0;
            while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written);
          };
          // data already read (most files): written without an await per chunk
          if (data) for (const chunk of data) write(chunk);
          else for await (const chunk of body) write(chunk);
          // chown first: it clears setuid bits and file capabilities set before it
          if (owner && needsChown(owner)) fchownSync(fd, owner.uid, owner.gid);
          applyXattrs(path, entry);
          if ((entry.mode & 0o7000) !== 0 || umask !== 0) fchmodSync(fd, entry.mode);
          futimesSync(fd, entry.mtime, entry.mtime);
        } finally {
          closeSync(fd);
        }
        result.bytes += entry.size;
        break;
      }
      case 'symlink': {
        if (Buffer.byteLength(entry.linkpath) > maxPathBytes || entry.linkpath.includes('\0')) {
          throw new NookError(`${what}: refusing symlink ${short(entry.path)}: its target is not a valid path`);
        }
        createReplacing(path, () => symlinkSync(entry.linkpath, path));
        if (owner && needsChown(owner)) lchownSync(path, owner.uid, owner.gid);
        applyXattrs(path, entry);
        lutimesSync(path, entry.mtime, entry.mtime);
        break;
      }
      case 'hardlink': {
        if (entry.linkpath.startsWith('/')) throw new NookError(`${what}: refusing hardlink ${short(entry.path)}: its target ${short(entry.linkpath)} is absolute`);
        const targetComponents = safeComponents(entry.linkpath, what, `hardlink ${short(entry.path)} to`);
        if (targetComponents.length === 0) throw new NookError(`${what}: refusing hardlink ${short(entry.path)}: it points at the layer's root`);
        // resolve the target's parents without following symlinks
        let targetDir = root;
        for (const c of targetComponents.slice(0, -1)) {
          targetDir = join(targetDir, c);
          const st = lstatOrNull(targetDir);
          if (!st || !st.isDirectory()) {
            throw new NookError(`${what}: refusing hardlink ${short(entry.path)}: its target ${short(entry.linkpath)} ${st?.isSymbolicLink() ? 'goes through a symlink' : 'is not in this layer'}`);
          }
        }
        const target = join(targetDir, targetComponents[targetComponents.length - 1]!);
        const st = lstatOrNull(target);
        if (!st) throw new NookError(`${what}: refusing hardlink ${short(entry.path)}: its target ${short(entry.linkpath)} is not in this layer`);
        if (st.isDirectory()) throw new NookError(`${what}: refusing hardlink ${short(entry.path)}: its target ${short(entry.linkpath)} is a directory`);
        if (target === path) break;
        removeExisting(path, false);
        linkSync(target, path);
        break;
      }
      case 'char':
      case 'block': {
        removeExisting(path, false);
        if (entry.type === 'char' && entry.devmajor === 0 && entry.devminor === 0) {
          // already an overlay whiteout in the tar
          makeWhiteout(parent, base!);
          break;
        }
        try {
          syscalls.mknod(path, (entry.type === 'char' ? S_IFCHR : S_IFBLK) | entry.mode, entry.devmajor, entry.devminor);
          if (owner) lchownSync(path, owner.uid, owner.gid);
          chmodSync(path, entry.mode);
        } catch {
          skippedDevices.push(`${entry.path} (${entry.type} ${entry.devmajor}:${entry.devminor})`);
        }
        break;
      }
      case 'fifo': {
        removeExisting(path, false);
        syscalls.mknod(path, S_IFIFO | (entry.mode & 0o777), 0, 0);
        if (owner) lchownSync(path, owner.uid, owner.gid);
        chmodSync(path, entry.mode);
        lutimesSync(path, entry.mtime, entry.mtime);
        break;
      }
    }
  }

  // Directory modes and times last: children change a directory's mtime, and
  // a read-only directory (0555) must stay writable while it is filled.
  for (const dir of [...dirs.values()].reverse()) {
    chmodSync(dir.path, dir.mode);
    lutimesSync(dir.path, dir.mtime, dir.mtime);
  }

  if (skippedDevices.length > 0) {
    const list = skippedDevices.slice(0, 3).join(', ');
    result.notes.push(`skipped ${skippedDevices.length} device node${skippedDevices.length > 1 ? 's' : ''} (${list}${skippedDevices.length > 3 ? ', ...' : ''}): they cannot be created without root; containers get their /dev from nook`);
  }
  if (skippedXattrs.size > 0) result.notes.push(`did not set extended attributes ${[...skippedXattrs].sort().join(', ')}`);
  if (squashedOwners > 0) result.notes.push(`${squashedOwners} file${squashedOwners > 1 ? 's' : ''} owned by ids outside the user namespace given to root (--ignore-chown-errors)`);
  return result;
}

/** The id ranges of the current process's user namespace (inside ids). */
export function currentIdRanges(): { uids: IdRange[]; gids: IdRange[] } {
  return {
    uids: parseIdMap(readFileSync('/proc/self/uid_map', 'utf8')),
    gids: parseIdMap(readFileSync('/proc/self/gid_map', 'utf8')),
  };
}
