/**
 * The image store (../store.ts) as a pull destination: one lease for the
 * whole pull (so that a concurrent rmi or prune never removes what the pull
 * is adding), partial downloads in the store's partial/ directory under a
 * per-blob lock of their own, blobs moved in with `ingestFile`, layers
 * unpacked by `unpackLayers` while each blob downloads.
 */
import { join } from 'node:path';
import { acquireLock } from '../../lib/lock.js';
import { resolvePaths } from '../../lib/paths.js';
import type { Progress } from '../../lib/progress.js';
import { formatReference, repositoryName } from '../reference.js';
import { ImageStore, type ImageStoreOptions, type StoreLease } from '../store.js';
import type { Digest } from '../digest.js';
import type { DownloadingBlob, LockHandle, PullDestination, PulledImage, PulledLayer } from './destination.js';

export interface StorePaths {
  root?: string | undefined;
  runroot?: string | undefined;
}

/** Runs `fn` with the store of `paths` as the destination, inside one lease. */
export async function withPullDestination<T>(
  paths: StorePaths,
  progress: Progress,
  fn: (destination: PullDestination) => Promise<T>,
  storeOptions: ImageStoreOptions = {},
): Promise<T> {
  const store = new ImageStore(resolvePaths(paths), storeOptions);
  return store.withLease((lease) => fn(leaseDestination(store, lease, progress)));
}

export function leaseDestination(store: ImageStore, lease: StoreLease, progress: Progress): PullDestination {
  const partialDir = store.partialDir;
  return {
    partialDir,

    // Not lease.lockBlob: ingestFile takes that same lock itself, and the
    // partial file must stay locked until its layer is in.
    lockPartial: async (digest: string): Promise<LockHandle> =>
      acquireLock(join(store.dir, 'locks', `partial-${digest.slice('sha256:'.length)}.lock`), {
        description: `the download of ${digest}`,
        onWait: () => progress.step(`Waiting for another pull downloading ${digest.slice(7, 19)}`),
      }),

    hasLayer: (diffId: string) => lease.hasLayer(diffId as Digest),

    hasBlob: (digest: string) => lease.hasBlob(digest as Digest),

    addLayer: async (blob: DownloadingBlob | undefined, layer: PulledLayer, options: { background?: boolean } = {}): Promise<void> => {
      const digest = layer.descriptor.digest as Digest;
      const what = `layer ${digest.slice(7, 19)}`;
      // downloadBlob hashed the blob as it wrote it and checked the digest: it goes in as it is
      const stored = blob?.done.then(() => lease.ingestVerifiedFile(blob.path, digest));
      // awaited by unpackLayers only once the extraction is over; a failed download before that is no unhandled rejection
      stored?.catch(() => undefined);
      const download = blob && stored && { path: blob.path, file: blob.file, stored };
      await lease.unpackLayers([{ blob: digest, diffId: layer.diffId as Digest, compression: layer.descriptor.compression, what, ...(download ? { download } : {}) }], { progress, ...options });
    },

    addImage: async (image: PulledImage): Promise<string> => {
      const repository = repositoryName(image.reference);
      const repoDigests = [`${repository}@${image.manifestDigest}`];
      if (image.list) repoDigests.push(`${repository}@${image.list.digest}`);
      // A digest pull names no tag: the image is found by its repo digest, as in podman.
      const names = image.reference.tag !== undefined ? [formatReference({ ...image.reference, digest: undefined })] : [];
      const record = await lease.commitImage({
        config: image.configBytes,
        layers: image.layers.map((l) => ({
          diffId: l.diffId as Digest,
          blob: l.descriptor.digest as Digest,
          blobSize: l.descriptor.size,
          compression: l.descriptor.compression,
        })),
        manifest: { bytes: image.manifestBytes, mediaType: image.manifestMediaType },
        names,
        repoDigests,
        source: 'pull',
      });
      return `sha256:${record.id}`;
    },
  };
}
