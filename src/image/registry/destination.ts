/**
 * What a pull needs from the image store, and nothing more: the registry
 * client is written against this, and src/image/store.ts provides it
 * (see ./store-destination.ts). Tests can pass any implementation.
 */
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
   * Puts a complete, verified blob into the store (the file at `blobPath`,
   * which the store may hard-link or copy; undefined when hasBlob said it is
   * there) and unpacks it as the layer `layer.diffId`, verifying the
   * uncompressed digest. Nothing is visible unless it all succeeded; a layer
   * another process added meanwhile is not an error.
   */
  addLayer(blobPath: string | undefined, layer: PulledLayer): Promise<void>;
  /** Records the image and its name once every layer is in. Returns the image id (the config digest). */
  addImage(image: PulledImage): Promise<string>;
}
