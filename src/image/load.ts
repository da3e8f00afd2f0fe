/**
 * `nook load`: images from a docker-archive, an oci-archive (either possibly
 * gzip'd), or an OCI layout directory, into the store. The archive is unpacked
 * into the lease's work space (on the store's filesystem), so layer blobs are
 * moved into the store rather than copied. Everything is verified (digests,
 * diff ids, layer safety) before an image record is written: a bad archive
 * leaves the store as it was.
 */
import { createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { NookError } from '../lib/errors.js';
import { silentProgress, type Progress } from '../lib/progress.js';
import { detectFileCompression } from './compression.js';
import { shortDigest, type Digest } from './digest.js';
import { detectFormat, readDockerArchive, readOciLayout, type ArchiveImage } from './archive/formats.js';
import { unpackArchive, type UnpackedArchive } from './archive/unpack-archive.js';
import type { Compression, LayerRef } from './records.js';
import type { ImageStore, StoreLease } from './store.js';

export interface LoadOptions {
  progress?: Progress;
  /** where "-" reads from (default process.stdin) */
  stdin?: NodeJS.ReadableStream;
}

export interface LoadedImage {
  id: string;
  names: string[];
}

export async function loadImages(store: ImageStore, input: string, options: LoadOptions = {}): Promise<LoadedImage[]> {
  const progress = options.progress ?? silentProgress;
  return store.withLease(async (lease) => {
    let archive: UnpackedArchive;
    let what: string;
    if (input === '-') {
      what = 'the archive on standard input';
      const file = join(lease.tempDir(), 'archive');
      await pipeline(options.stdin ?? process.stdin, createWriteStream(file));
      archive = await unpackArchive(file, lease.tempDir(), what);
    } else {
      what = input;
      let isDir: boolean;
      try {
        isDir = statSync(input).isDirectory();
      } catch (error) {
        throw new NookError(`cannot read ${input}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
      }
      archive = isDir ? { dir: input, links: new Map(), digests: new Map() } : await unpackArchive(input, lease.tempDir(), what);
    }
    const format = detectFormat(archive, what);
    const images = format === 'docker-archive' ? readDockerArchive(archive, what) : readOciLayout(archive, what);
    const loaded: LoadedImage[] = [];
    for (const image of images) loaded.push(await storeImage(lease, image, archive, progress));
    return loaded;
  });
}

async function storeImage(lease: StoreLease, image: ArchiveImage, archive: UnpackedArchive, progress: Progress): Promise<LoadedImage> {
  const layers: LayerRef[] = [];
  for (const [i, layer] of image.layers.entries()) {
    const what = `layer ${i + 1} of ${image.what}`;
    const size = statSync(layer.path).size;
    const task = progress.task(`Copying blob ${shortDigest(layer.digest ?? layer.diffId)}`, size);
    // hashed while the archive was unpacked: no second read of every layer
    const hashed = archive.digests.get(layer.path);
    let digest: Digest;
    if (hashed !== undefined && (layer.digest === undefined || hashed === layer.digest)) {
      await lease.ingestVerifiedFile(layer.path, hashed);
      digest = hashed;
      task.update(size);
    } else {
      digest = (await lease.ingestFile(layer.path, layer.digest, what, task)).digest;
    }
    task.finish();
    const detected = detectFileCompression(lease.store.blobPath(digest));
    if (detected === 'xz' || detected === 'bzip2') throw new NookError(`${what} is ${detected}-compressed, which image layers cannot be (only gzip, zstd or none)`);
    const compression: Compression = detected;
    if (compression === 'none' && digest !== layer.diffId) {
      throw new NookError(`${what}: its content has digest ${digest}, but the image config says ${layer.diffId} (corrupt or tampered archive)`);
    }
    layers.push({ diffId: layer.diffId, blob: digest, blobSize: size, compression });
  }
  await lease.unpackLayers(
    layers.map((l, i) => ({ blob: l.blob, diffId: l.diffId, compression: l.compression, what: `layer ${i + 1} of ${image.what}` })),
    { progress },
  );
  progress.step('Writing manifest to image destination');
  const record = await lease.commitImage({
    config: image.configBytes,
    layers,
    ...(image.manifest ? { manifest: { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType } } : {}),
    names: image.names,
    source: 'load',
  });
  return { id: record.id, names: image.names };
}
