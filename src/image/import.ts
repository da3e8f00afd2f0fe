/**
 * `nook import TARBALL [NAME]`: a root filesystem tarball (plain, gzip, zstd,
 * xz or bzip2; a file or "-" for standard input) becomes a one-layer image
 * with a generated config, as `podman import` does. The tarball passes the
 * same checks as any layer (./unpack.ts).
 */
import { createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NookError } from '../lib/errors.js';
import { silentProgress, type Progress } from '../lib/progress.js';
import { applyChanges } from './changes.js';
import { detectFileCompression, openDecompressed } from './compression.js';
import { DigestStream, type Digest } from './digest.js';
import { localReference, taggedName } from './reference.js';
import type { ImageConfig, LayerRef } from './records.js';
import { hostPlatform } from './registry/platform.js';
import type { ImageStore } from './store.js';

export interface ImportOptions {
  /** NAME: short names go under localhost/ */
  name?: string;
  /** --change instructions */
  changes?: string[];
  /** --message: the history comment */
  message?: string;
  os?: string;
  arch?: string;
  variant?: string;
  progress?: Progress;
  stdin?: NodeJS.ReadableStream;
}

const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export async function importTarball(store: ImageStore, source: string, options: ImportOptions = {}): Promise<{ id: string; name: string | undefined }> {
  const progress = options.progress ?? silentProgress;
  const name = options.name ? taggedName(localReference(options.name)) : undefined;
  return store.withLease(async (lease) => {
    let path = source;
    let what = source;
    if (source === '-') {
      what = 'the tarball on standard input';
      path = join(lease.tempDir(), 'rootfs');
      await pipeline(options.stdin ?? process.stdin, createWriteStream(path));
    } else {
      try {
        if (!statSync(source).isFile()) throw new NookError(`${source} is not a file`);
      } catch (error) {
        if (error instanceof NookError) throw error;
        throw new NookError(`cannot read ${source}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
      }
    }
    // Layers may only be plain, gzip or zstd: keep the file as it is when it is one of those.
    let compression = detectFileCompression(path);
    const hasher = new DigestStream();
    if (compression === 'xz' || compression === 'bzip2') {
      const plain = join(lease.tempDir(), 'rootfs.tar');
      await pipeline(openDecompressed(path, what).stream, hasher, createWriteStream(plain));
      path = plain;
      compression = 'none';
    } else {
      await pipeline(openDecompressed(path, what).stream, hasher, devNull());
    }
    const diffId: Digest = hasher.digest();
    const task = progress.task('Copying blob');
    const blob = await lease.ingestFile(path, undefined, what);
    task.finish();
    await lease.unpackLayers([{ blob: blob.digest, diffId, compression, what }], { progress });

    const created = new Date().toISOString();
    const platform = hostPlatform();
    const config: ImageConfig = {
      created,
      architecture: options.arch ?? platform.architecture,
      os: options.os ?? 'linux',
      ...(options.variant ?? platform.variant ? { variant: options.variant ?? platform.variant } : {}),
      config: applyChanges({ Env: [defaultPath] }, options.changes ?? []),
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: `nook import ${source === '-' ? '-' : source.split('/').pop()}`, ...(options.message ? { comment: options.message } : {}) }],
    };
    const layer: LayerRef = { diffId, blob: blob.digest, blobSize: blob.size, compression };
    progress.step('Writing manifest to image destination');
    const record = await lease.commitImage({ config: Buffer.from(JSON.stringify(config)), layers: [layer], names: name ? [name] : [], source: 'import' });
    return { id: record.id, name };
  });
}

function devNull(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
