/**
 * What a pull needs from the image store, and nothing more: the registry
 * client is written against this, and src/image/store.ts provides it
 * (see ./store-destination.ts). Tests can pass any implementation.
 */
import type { GrowingFile } from '../growing-file.js';
import type { ImageReference } from '../reference.js';
import type { LayerDescriptor, Platform } from './manifest.js';

export interface PulledLayer {
  /** the blob as the manifest describes it (compressed digest, size, media type) */
  descriptor: LayerDescriptor;
  /** sha256 of the uncompressed tar, from the config's rootfs.diff_ids */
  diffId: string;
}

export interface PulledImage {
  /** the reference that was pulled from (after short-name resolution), tag or digest */
  reference: ImageReference;
  /** the image manifest (not the list) */
  manifestBytes: Buffer;
  manifestDigest: string;
  manifestMediaType: string;
  /** when the reference named a manifest list or index */
  list: { bytes: Buffer; digest: string; mediaType: string } | undefined;
  configBytes: Buffer;
  configDigest: string;
  layers: PulledLayer[];
  platform: Platform;
}

export interface LockHandle {
  release(): void;
}

/** A layer's blob being downloaded into a partial file, which the destination may read as it grows. */
export interface DownloadingBlob {
  /** the partial file (in `partialDir`) */
  path: string;
  /** how much of it is written, and when it is complete */
  file: GrowingFile;
  /** settles when the download ends: resolved when the whole blob is there and matches its digest */
  done: Promise<void>;
}

export interface PullDestination {
  /**
   * A directory on the store's file system for blobs being downloaded. Files
   * there are named by digest and survive a failed pull, so the next one
   * resumes them.
   */
  readonly partialDir: string;
  /**
   * An exclusive lock on one blob's partial file (two pulls of the same image
   * must not write it at once). Held while downloading and while adding the
   * layer, so that the second pull finds the layer done.
   */
  lockPartial(digest: string): Promise<LockHandle>;
  /** Is the layer with this diff id already unpacked in the store? Then its blob is not downloaded. */
  hasLayer(diffId: string): Promise<boolean>;
  /** Is the blob itself in the store (the layer only needs unpacking)? */
  hasBlob(digest: string): Promise<boolean>;
  /**
   * Unpacks the layer `layer.diffId` (verifying the uncompressed digest) from
   * its blob, which is either being downloaded (`blob`: unpacked as it
   * arrives, and put into the store, which may hard-link or copy the file,
   * once the download succeeded) or in the store already (undefined, when
   * hasBlob said so). Nothing is visible unless it all succeeded; a layer
   * another process added meanwhile is not an error. `background`: the pull
   * does not wait for this layer most (a bigger one is being added too), so
   * it may get less CPU.
   */
  addLayer(blob: DownloadingBlob | undefined, layer: PulledLayer, options?: { background?: boolean }): Promise<void>;
  /** Records the image and its name once every layer is in. Returns the image id (the config digest). */
  addImage(image: PulledImage): Promise<string>;
}
