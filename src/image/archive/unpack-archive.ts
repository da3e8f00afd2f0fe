/**
 * Unpacks an image archive (docker-archive, oci-archive; possibly gzip'd as in
 * `docker save | gzip`) into a private work directory: regular files and
 * directories only, owned by the user, with the same path rules as layers
 * (nothing outside the directory). Symlinks and hardlinks between members,
 * which older `docker save` writes for repeated layers, are recorded rather
 * than created and resolved inside the archive by `resolveMember`.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync, lstatSync } from 'node:fs';
import { join, posix } from 'node:path';
import { NookError } from '../../lib/errors.js';
import { openDecompressed } from '../compression.js';
import type { Digest } from '../digest.js';
import { readTar } from '../tar-reader.js';
import { safeComponents } from '../unpack.js';

export interface UnpackedArchive {
  dir: string;
  /** member path -> the member it links to (archive-relative) */
  links: Map<string, string>;
  /**
   * on-disk path of a file member -> the sha256 of its content, computed as
   * it was written, so that storing a layer blob need not read it again
   */
  digests: Map<string, Digest>;
}

export async function unpackArchive(file: string, dir: string, what: string): Promise<UnpackedArchive> {
  const links = new Map<string, string>();
  const digests = new Map<string, Digest>();
  const { stream } = openDecompressed(file, what);
  try {
    for await (const { entry, body } of readTar(stream, { what })) {
      const components = safeComponents(entry.path, what);
      if (components.length === 0) continue;
      const name = components.join('/');
      let parent = dir;
      for (const c of components.slice(0, -1)) {
        parent = join(parent, c);
        mkdirSync(parent, { recursive: true, mode: 0o700 });
      }
      const path = join(dir, name);
      if (entry.type === 'directory') {
        mkdirSync(path, { recursive: true, mode: 0o700 });
      } else if (entry.type === 'file') {
        const fd = openSync(path, 'w', 0o600);
        const hash = createHash('sha256');
        try {
          for await (const chunk of body) {
            hash.update(chunk);
            let written = 0;
            while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written);
          }
        } finally {
          closeSync(fd);
        }
        digests.set(path, `sha256:${hash.digest('hex')}`);
      } else if (entry.type === 'symlink') {
        // relative to the link's directory, as the filesystem would resolve it
        const target = entry.linkpath.startsWith('/') ? entry.linkpath : posix.join(posix.dirname(name), entry.linkpath);
        links.set(name, safeComponents(target.replace(/^\/+/, ''), what, `link ${JSON.stringify(name)} to`).join('/'));
      } else if (entry.type === 'hardlink') {
        links.set(name, safeComponents(entry.linkpath, what, `link ${JSON.stringify(name)} to`).join('/'));
      }
      // devices and fifos have no business in an image archive: ignored
    }
  } catch (error) {
    stream.destroy();
    if (error instanceof NookError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'EEXIST' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new NookError(`${what}: malformed archive (a member is both a file and a directory)`, { cause: error });
    }
    throw new NookError(`${what}: cannot unpack: ${(error as Error).message}`, { cause: error });
  }
  return { dir, links, digests };
}

/** The on-disk path of archive member `name`, following recorded links (inside the archive only). */
export function resolveMember(archive: UnpackedArchive, name: string, what: string): string {
  let current = safeComponents(name, what, 'member').join('/');
  for (let hops = 0; hops < 16; hops++) {
    const next = archive.links.get(current);
    if (next === undefined) {
      const path = join(archive.dir, current);
      try {
        if (!lstatSync(path).isFile()) throw new Error('not a file');
      } catch {
        throw new NookError(`${what}: the archive has no file ${JSON.stringify(name)}`);
      }
      return path;
    }
    current = next;
  }
  throw new NookError(`${what}: too many links resolving ${JSON.stringify(name)}`);
}

/** True when the archive has member `name` (a file or a link). */
export function hasMember(archive: UnpackedArchive, name: string): boolean {
  try {
    resolveMember(archive, name, 'archive');
    return true;
  } catch {
    return false;
  }
}
