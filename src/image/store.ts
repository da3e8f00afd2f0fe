/**
 * nook's image store: content-addressed blobs, one extracted directory per
 * layer, image records and names, safe for many nook processes at once.
 *
 * ## Layout (under `<data root>/storage/`)
 *
 *   blobs/sha256/HEX          configs, manifests, layer blobs exactly as received
 *   layers/HEX/diff/          a layer extracted (HEX = its diff id: the digest
 *                             of the uncompressed tar, checked while extracting),
 *                             owned as the tar says through the user's id mapping,
 *                             whiteouts in overlay form (see ./whiteout.ts)
 *   layers/HEX/layer.json     LayerRecord (size, whiteout format, notes)
 *   images/ID.json            ImageRecord (ID = sha256 of the config blob)
 *   repositories.json         { names: { "docker.io/library/busybox:latest": ID } }
 *   leases/L.lock, L.json     in-progress operations and what they pin (below)
 *   locks/                    per-blob and per-layer ingest locks
 *   tmp/L/                    work space of lease L; renamed into place when
 *                             complete, so no partial blob or layer is ever visible
 *   store.lock                shared: adding content; exclusive: names, records, GC
 *
 * ## Concurrency
 * Every writer works inside a *lease* (`store.withLease`). A lease is a file
 * locked (flock) for the lifetime of the operation, listing the blobs, layers
 * and images it uses. Garbage collection (rmi, image prune) runs under the
 * exclusive store lock and never removes what a live lease pins, so a pull
 * running while `nook rmi` removes the same image keeps its layers, and the
 * image simply reappears when the pull commits. A lease whose process died is
 * noticed (its lock is free) and its work space removed. Two pulls of the same
 * image serialise per blob and per layer (locks/), so each is fetched and
 * extracted once. Names and records change only under the exclusive lock,
 * records are written atomically (write, fsync, rename).
 *
 * ## For `nook run` (the container side)
 *   const store = new ImageStore(paths);
 *   const image = await store.imageForRun('busybox');
 *   // image.id, image.name, image.config (Env, Cmd, Entrypoint, WorkingDir, User...),
 *   // image.layerDirs: extracted layers TOP-MOST FIRST (overlay lowerdir order),
 *   // image.whiteoutFormat: 'aufs' means only fuse-overlayfs reads them.
 *   // readImageFile(image.layerDirs, '/etc/passwd') (./layer-files.ts) honours whiteouts.
 * To keep an image from being removed while a container is created, create
 * the container record inside `store.withLease(l => { l.pinImage(id); ... })`;
 * afterwards the container itself keeps it: pass `containerImageIds` (the ids
 * of images used by any container) in ImageStoreOptions, so rmi refuses them
 * (exit 2, as podman) and prune keeps them. `removeContainersOfImage` is
 * called by `rmi --force` for images in use.
 *
 * ## For `nook pull` (the registry client)
 *   const store = new ImageStore(paths, options);
 *   const record = await store.withLease(async (lease) => {
 *     // each blob: fetched only if missing; digest (and size) verified; atomic
 *     await lease.ingestBlob(layer.digest, { size: layer.size, open: async () => httpStream });
 *     // layers: extracted in the user namespace, diff ids checked against the config
 *     await lease.unpackLayers([{ blob, diffId, compression }], { progress });
 *     return lease.commitImage({ config: configBytes, layers, manifest: { bytes, mediaType },
 *                                names: ['docker.io/library/busybox:latest'], repoDigests, source: 'pull' });
 *   });
 * `lease.hasBlob(d)` / `lease.hasLayer(diffId)` pin and answer; `store.findImage(ref)`
 * answers "already have it?" for `--pull=missing`.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, createWriteStream, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import { NookError, errnoCode } from '../lib/errors.js';
import { acquireLock, tryLock, withLock, type FileLock } from '../lib/lock.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../lib/atomic.js';
import { ensureDir, type NookPaths } from '../lib/paths.js';
import { mark } from '../lib/timing.js';
import { silentProgress, type Progress, type ProgressTask } from '../lib/progress.js';
import type { Syscalls } from '../syscalls/syscalls.js';
import { DigestStream, digestHex, sha256Of, shortDigest, type Digest } from './digest.js';
import { runExtraction } from './extract.js';
import type { GrowingFile } from './growing-file.js';
import { parseImageConfig, type Compression, type ImageConfig, type ImageRecord, type ImageRunConfig, type ImageView, type LayerRecord, type LayerRef } from './records.js';
import { resolveName } from './names.js';
import { splitReference } from './reference.js';
import { loadRegistriesConfig, searchRegistries } from './registry/registries-conf.js';
import type { NamespaceRunner } from './userns.js';
import type { WhiteoutFormat } from './whiteout.js';

export type { ImageRecord, ImageView, LayerRecord, LayerRef, ImageConfig, ImageRunConfig } from './records.js';

/** podman's exit codes for rmi: 1 no such image, 2 image in use. */
export const RmiExit = { NoSuchImage: 1, InUse: 2 } as const;

export interface ImageStoreOptions {
  /** ids (hex) of images used by containers; they are kept by rmi (unless forced), prune and GC */
  containerImageIds?: () => Promise<Iterable<string>> | Iterable<string>;
  /** removes the containers of an image, for `rmi --force` */
  removeContainersOfImage?: (imageId: string) => Promise<void>;
  /** runs helpers in the user's user namespace (default: util-linux unshare) */
  runner?: NamespaceRunner;
  /** registries a short name may mean when looking images up (default from registries.conf) */
  searchRegistries?: readonly string[];
  /** files owned by ids outside the mapping are given to root instead of refusing the layer */
  ignoreChownErrors?: boolean;
  syscalls?: Syscalls;
}

export interface ImageForRun {
  id: string;
  /** the name it was found by (normalised), or the id */
  name: string;
  /** the run part of the image config (Env, Cmd, Entrypoint, WorkingDir, User, ...) */
  config: ImageRunConfig;
  /** the whole image config */
  imageConfig: ImageConfig;
  /** extracted layer directories, top-most first */
  layerDirs: string[];
  /** 'aufs' when some layer keeps .wh. files: only fuse-overlayfs reads those */
  whiteoutFormat: WhiteoutFormat;
  /** the bottom-most layer is known to hold no whiteouts or opaque directories (the vfs driver may then copy it as it is) */
  plainBottomLayer: boolean;
}

export interface CommitSpec {
  /** the config blob's exact bytes (its sha256 is the image id) */
  config: Buffer;
  /** bottom first; must match the config's rootfs.diff_ids */
  layers: LayerRef[];
  manifest?: { bytes: Buffer; mediaType: string };
  /** full names ("docker.io/library/busybox:latest") to point at this image */
  names: string[];
  repoDigests?: string[];
  source: string;
}

export interface LayerToUnpack {
  blob: Digest;
  diffId: Digest;
  /** what the media type says; the content's own magic bytes decide how it is decompressed */
  compression: Compression;
  /** for messages: "layer 2/5 of docker.io/library/busybox" */
  what?: string;
  /** the blob is not in the store yet but being downloaded: extract it as it arrives (see BlobDownload) */
  download?: BlobDownload;
}

/**
 * A blob being written into a file outside the store (a pull's partial
 * download) that a layer is extracted from while it grows. `stored` settles
 * when the download is over: resolved once the blob is complete, verified
 * against its digest and in the store; rejected otherwise. The layer is put in
 * place only after it resolved; a rejection is the error of the whole unpack.
 */
export interface BlobDownload {
  path: string;
  file: GrowingFile;
  stored: Promise<void>;
}

export interface RemovalReport {
  untagged: string[];
  deleted: string[];
  errors: NookError[];
}

interface Repositories {
  names: Record<string, string>;
}

interface LeaseFile {
  pid: number;
  started: string;
  blobs: string[];
  layers: string[];
  images: string[];
}

export interface DiskUsage {
  images: { total: number; active: number; size: number; reclaimable: number };
  layers: { total: number; size: number };
  blobs: { total: number; size: number };
}


export class ImageStore {
  /** <data root>/storage */
  readonly dir: string;
  readonly options: ImageStoreOptions;
  private runnerInstance: NamespaceRunner | undefined;
  private searchList: readonly string[] | undefined;

  constructor(paths: NookPaths, options: ImageStoreOptions = {}) {
    this.dir = join(paths.root, 'storage');
    this.options = options;
  }

  async runner(): Promise<NamespaceRunner> {
    // Loaded on first extraction only: it brings execa, which `nook run` does not need.
    this.runnerInstance ??= this.options.runner ?? (await (await import('./userns.js')).defaultNamespaceRunner());
    return this.runnerInstance;
  }

  // ---- paths ----

  blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }
  layerDir(diffId: Digest): string {
    return join(this.dir, 'layers', digestHex(diffId));
  }
  /** the directory a layer's files are in (overlay lowerdir) */
  layerDiffDir(diffId: Digest): string {
    return join(this.layerDir(diffId), 'diff');
  }
  /**
   * Where downloads in progress are kept (named by digest) so that a failed
   * pull can resume: not inside a lease's work space, which is removed.
   * Take `lease.lockBlob(digest)` before writing one.
   */
  get partialDir(): string {
    return ensureDir(join(this.dir, 'partial'));
  }
  private imagePath(id: string): string {
    return join(this.dir, 'images', `${id}.json`);
  }
  private get repositoriesPath(): string {
    return join(this.dir, 'repositories.json');
  }
  private get storeLockPath(): string {
    return join(this.dir, 'store.lock');
  }

  private ensureLayout(): void {
    ensureDir(this.dir);
    for (const sub of ['blobs/sha256', 'layers', 'images', 'leases', 'locks', 'tmp']) ensureDir(join(this.dir, sub));
  }

  /** A lock on the whole store; shared while adding content, exclusive for names, records and GC. */
  async lockStore(mode: 'shared' | 'exclusive'): Promise<FileLock> {
    this.ensureLayout();
    return acquireLock(this.storeLockPath, { mode, description: 'the image store', ...(this.options.syscalls ? { syscalls: this.options.syscalls } : {}) });
  }

  // ---- reading ----

  private readRepositories(): Repositories {
    const repos = readJsonFile<Repositories>(this.repositoriesPath, { names: {} });
    if (typeof repos !== 'object' || repos === null || typeof repos.names !== 'object') throw new NookError(`${this.repositoriesPath} is corrupt`);
    return repos;
  }

  readRecord(id: string): ImageRecord | null {
    const record = readJsonFile<ImageRecord | null>(this.imagePath(id), null);
    return record && typeof record.id === 'string' && Array.isArray(record.layers) ? record : null;
  }

  readLayerRecord(diffId: Digest): LayerRecord | null {
    const record = readJsonFile<LayerRecord | null>(join(this.layerDir(diffId), 'layer.json'), null);
    return record && existsSync(this.layerDiffDir(diffId)) ? record : null;
  }

  private listRecordIds(): string[] {
    try {
      return readdirSync(join(this.dir, 'images'))
        .filter((f) => /^[a-f0-9]{64}\.json$/.test(f))
        .map((f) => f.slice(0, 64));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw error;
    }
  }

  /** Every image with its names (names of missing records are ignored), newest first. */
  listImagesUnlocked(): ImageView[] {
    const repos = this.readRepositories();
    const namesById = new Map<string, string[]>();
    for (const [name, id] of Object.entries(repos.names)) {
      const list = namesById.get(id) ?? [];
      list.push(name);
      namesById.set(id, list);
    }
    const views: ImageView[] = [];
    for (const id of this.listRecordIds()) {
      const record = this.readRecord(id);
      if (!record) continue;
      views.push({ record, names: (namesById.get(id) ?? []).sort() });
    }
    // Plain comparison of ISO dates: localeCompare would initialise ICU (~9 ms) on `nook run`'s path.
    return views.sort((a, b) => compareText(b.record.created ?? b.record.stored, a.record.created ?? a.record.stored));
  }

  async listImages(): Promise<ImageView[]> {
    if (!existsSync(this.dir)) return [];
    const lock = await this.lockStore('shared');
    try {
      return this.listImagesUnlocked();
    } finally {
      lock.release();
    }
  }

  /** The image `input` names (name, short name, id, id prefix, name@digest), or null. */
  async findImage(input: string): Promise<(ImageView & { matchedName: string | undefined }) | null> {
    const images = await this.listImages();
    return this.lookup(images, input);
  }

  private lookup(images: ImageView[], input: string): (ImageView & { matchedName: string | undefined }) | null {
    // Only short names need the search list: reading registries.conf is skipped on `run localhost/x`.
    const searchRegistries = this.options.searchRegistries ?? (isQualified(input) ? [] : (this.searchList ??= configuredSearchRegistries()));
    return resolveName({ images, searchRegistries }, input);
  }

  /** As findImage, but a missing image is an error ("image not known", exit 125 as podman's inspect). */
  async resolveImage(input: string): Promise<ImageView & { matchedName: string | undefined }> {
    const found = await this.findImage(input);
    if (!found) throw new NookError(`${input}: image not known`);
    return found;
  }

  /** The config blob of an image, parsed. */
  readConfig(record: ImageRecord): ImageConfig {
    const path = this.blobPath(`sha256:${record.id}`);
    let bytes: Buffer;
    try {
      bytes = readFileBuffer(path);
    } catch (error) {
      throw new NookError(`the store is missing the config of image ${record.id.slice(0, 12)} (${path}); remove the image and load or pull it again`, { cause: error });
    }
    return parseImageConfig(bytes, `image ${record.id.slice(0, 12)}`);
  }

  readConfigBytes(record: ImageRecord): Buffer {
    return readFileBuffer(this.blobPath(`sha256:${record.id}`));
  }

  /** What `nook run` needs of an image (see the top of this file). */
  async imageForRun(input: string): Promise<ImageForRun> {
    const view = await this.resolveImage(input);
    const { record } = view;
    const config = this.readConfig(record);
    let whiteoutFormat: WhiteoutFormat = 'overlay';
    let plainBottomLayer = false;
    const layerDirs: string[] = [];
    for (const layer of record.layers) {
      const info = this.readLayerRecord(layer.diffId);
      if (!info) {
        throw new NookError(`layer ${shortDigest(layer.diffId)} of image ${record.id.slice(0, 12)} is missing from the store; remove the image and load or pull it again`);
      }
      if (info.whiteoutFormat === 'aufs') whiteoutFormat = 'aufs';
      if (layerDirs.length === 0) plainBottomLayer = info.overlayMarkers === 0;
      layerDirs.push(this.layerDiffDir(layer.diffId));
    }
    return {
      id: record.id,
      name: view.matchedName ?? view.names[0] ?? record.id,
      config: config.config ?? {},
      imageConfig: config,
      layerDirs: layerDirs.reverse(),
      whiteoutFormat,
      plainBottomLayer,
    };
  }

  // ---- writing ----

  /** Runs `fn` inside a lease (see the top of this file); the lease's leftovers are removed after. */
  async withLease<T>(fn: (lease: StoreLease) => Promise<T>): Promise<T> {
    this.ensureLayout();
    const lease = await StoreLease.create(this);
    try {
      return await fn(lease);
    } finally {
      await lease.release();
    }
  }

  /** Points `name` (full, normalised, with tag) at image `id`, moving it from any other image. */
  async setName(id: string, name: string): Promise<void> {
    const lock = await this.lockStore('exclusive');
    try {
      if (!this.readRecord(id)) throw new NookError(`image ${id.slice(0, 12)} is not in the store`);
      const repos = this.readRepositories();
      repos.names[name] = id;
      writeJsonAtomic(this.repositoriesPath, repos);
    } finally {
      lock.release();
    }
  }

  /** Removes a name; returns false when it did not exist. */
  async removeName(name: string): Promise<boolean> {
    const lock = await this.lockStore('exclusive');
    try {
      const repos = this.readRepositories();
      if (!(name in repos.names)) return false;
      delete repos.names[name];
      writeJsonAtomic(this.repositoriesPath, repos);
      return true;
    } finally {
      lock.release();
    }
  }

  private async containerImageIds(): Promise<Set<string>> {
    return new Set(this.options.containerImageIds ? await this.options.containerImageIds() : []);
  }

  /**
   * `nook rmi`: a name that is one of several of an image only untags it;
   * an id (or an image's last name) deletes the image. In-use images and
   * images with several names given by id need `force` (podman's rules).
   */
  async removeImages(inputs: string[], options: { force?: boolean; all?: boolean; ignoreMissing?: boolean } = {}): Promise<RemovalReport> {
    const report: RemovalReport = { untagged: [], deleted: [], errors: [] };
    const inUse = await this.containerImageIds();
    const targets: { input: string; view: (ImageView & { matchedName: string | undefined }) | null }[] = [];
    if (options.all) {
      for (const view of await this.listImages()) targets.push({ input: view.record.id, view: { ...view, matchedName: undefined } });
    } else {
      for (const input of inputs) targets.push({ input, view: await this.findImage(input) });
    }
    for (const { input, view } of targets) {
      if (!view) {
        if (!options.ignoreMissing) report.errors.push(new NookError(`${input}: image not known`, { exitCode: RmiExit.NoSuchImage }));
        continue;
      }
      const id = view.record.id;
      try {
        // A name of an image with several names: untag only.
        if (!options.all && view.matchedName && view.names.length > 1) {
          if (await this.removeName(view.matchedName)) report.untagged.push(view.matchedName);
          continue;
        }
        if (inUse.has(id)) {
          if (!options.force) {
            throw new NookError(`image ${id.slice(0, 12)} (${view.names[0] ?? 'no name'}) is in use by a container; remove the container first or use --force`, { exitCode: RmiExit.InUse });
          }
          if (!this.options.removeContainersOfImage) {
            throw new NookError(`image ${id.slice(0, 12)} is in use by a container, and this nook cannot remove containers from here; remove them first`, { exitCode: RmiExit.InUse });
          }
          await this.options.removeContainersOfImage(id);
        }
        // named by id (or id prefix, or digest) while it has several names: podman refuses without --force
        if (!options.force && !options.all && view.names.length > 1 && !view.matchedName) {
          throw new NookError(`image ${id.slice(0, 12)} has several names (${view.names.join(', ')}); remove them one by one or use --force`);
        }
        const untagged = await this.deleteImage(id);
        report.untagged.push(...untagged);
        report.deleted.push(id);
      } catch (error) {
        report.errors.push(error instanceof NookError ? error : new NookError(`cannot remove ${input}: ${(error as Error).message}`, { cause: error }));
      }
    }
    if (report.deleted.length > 0) await this.garbageCollect();
    return report;
  }

  /** Removes an image record and its names (not its content: that is garbageCollect's job). */
  private async deleteImage(id: string): Promise<string[]> {
    const lock = await this.lockStore('exclusive');
    try {
      const repos = this.readRepositories();
      const names = Object.entries(repos.names).filter(([, target]) => target === id).map(([name]) => name);
      for (const name of names) delete repos.names[name];
      writeJsonAtomic(this.repositoriesPath, repos);
      rmSync(this.imagePath(id), { force: true });
      return names.sort();
    } finally {
      lock.release();
    }
  }

  /** `nook image prune`: dangling images (no name), or with `all` every image no container uses. */
  async pruneImages(options: { all?: boolean } = {}): Promise<{ deleted: string[]; reclaimed: number }> {
    const inUse = await this.containerImageIds();
    const before = this.diskBytes();
    const deleted: string[] = [];
    for (const view of await this.listImages()) {
      if (inUse.has(view.record.id)) continue;
      if (!options.all && view.names.length > 0) continue;
      await this.deleteImage(view.record.id);
      deleted.push(view.record.id);
    }
    await this.garbageCollect();
    return { deleted, reclaimed: Math.max(0, before - this.diskBytes()) };
  }

  /**
   * Removes blobs and layers no image record references and no live lease
   * pins, the work space of dead leases, and names pointing at missing records.
   */
  async garbageCollect(): Promise<{ blobs: number; layers: number }> {
    if (!existsSync(this.dir)) return { blobs: 0, layers: 0 };
    const lock = await this.lockStore('exclusive');
    const toRemove: string[] = [];
    let blobs = 0;
    let layers = 0;
    try {
      const pinned = await this.livePins(toRemove);
      const views = this.listImagesUnlocked();
      const usedBlobs = new Set<string>(pinned.blobs);
      const usedLayers = new Set<string>(pinned.layers);
      for (const { record } of views) {
        usedBlobs.add(record.id);
        if (record.manifestDigest) usedBlobs.add(digestHex(record.manifestDigest));
        for (const layer of record.layers) {
          usedBlobs.add(digestHex(layer.blob));
          usedLayers.add(digestHex(layer.diffId));
        }
      }
      for (const hex of usedLayers) {
        const source = readJsonFile<LayerRecord | null>(join(this.dir, 'layers', hex, 'layer.json'), null)?.blob;
        if (source) usedBlobs.add(digestHex(source));
      }
      for (const hex of safeReaddir(join(this.dir, 'blobs', 'sha256'))) {
        if (usedBlobs.has(hex)) continue;
        rmSync(join(this.dir, 'blobs', 'sha256', hex), { force: true });
        blobs++;
      }
      for (const hex of safeReaddir(join(this.dir, 'layers'))) {
        if (usedLayers.has(hex)) continue;
        // Move out of sight first (atomic), delete after: a half-deleted layer is never visible.
        const doomed = join(this.dir, 'tmp', `gc-${hex}-${randomBytes(4).toString('hex')}`);
        renameSync(join(this.dir, 'layers', hex), doomed);
        toRemove.push(doomed);
        layers++;
      }
      // Ingest locks of content nobody uses or pins. Safe to unlink: whoever
      // takes one pins the item first (under the shared store lock), so a lock
      // file in use always belongs to a pinned item.
      for (const file of safeReaddir(join(this.dir, 'locks'))) {
        const match = /^(blob|layer)-([a-f0-9]{64})\.lock$/.exec(file);
        if (!match) continue;
        const used = match[1] === 'blob' ? usedBlobs : usedLayers;
        if (!used.has(match[2]!)) rmSync(join(this.dir, 'locks', file), { force: true });
      }
      // names whose image record is gone (a crash between the two writes)
      const repos = this.readRepositories();
      const ids = new Set(views.map((v) => v.record.id));
      const stale = Object.entries(repos.names).filter(([, id]) => !ids.has(id));
      if (stale.length > 0) {
        for (const [name] of stale) delete repos.names[name];
        writeJsonAtomic(this.repositoriesPath, repos);
      }
    } finally {
      lock.release();
    }
    await this.removeTrees(toRemove);
    return { blobs, layers };
  }

  /** Pins of live leases; dead leases' files and work space are queued in `toRemove`. */
  private async livePins(toRemove: string[]): Promise<{ blobs: Set<string>; layers: Set<string>; images: Set<string> }> {
    const pins = { blobs: new Set<string>(), layers: new Set<string>(), images: new Set<string>() };
    const leasesDir = join(this.dir, 'leases');
    const leaseIds = new Set(safeReaddir(leasesDir).map((f) => f.replace(/\.(lock|json)$/, '')));
    for (const id of leaseIds) {
      const lockPath = join(leasesDir, `${id}.lock`);
      const probe = existsSync(lockPath) ? await tryLock(lockPath, this.options.syscalls ? { syscalls: this.options.syscalls } : {}) : null;
      if (probe || !existsSync(lockPath)) {
        // its process is gone: nothing it pinned is protected any more
        probe?.release();
        rmSync(join(leasesDir, `${id}.json`), { force: true });
        rmSync(lockPath, { force: true });
        const work = join(this.dir, 'tmp', id);
        if (existsSync(work)) {
          const doomed = join(this.dir, 'tmp', `gc-${id}`);
          renameSync(work, doomed);
          toRemove.push(doomed);
        }
        continue;
      }
      const lease = readJsonFile<LeaseFile | null>(join(leasesDir, `${id}.json`), null);
      for (const b of lease?.blobs ?? []) pins.blobs.add(b);
      for (const l of lease?.layers ?? []) pins.layers.add(l);
      for (const i of lease?.images ?? []) pins.images.add(i);
    }
    for (const i of pins.images) {
      const record = this.readRecord(i);
      pins.blobs.add(i);
      for (const layer of record?.layers ?? []) {
        pins.blobs.add(digestHex(layer.blob));
        pins.layers.add(digestHex(layer.diffId));
      }
    }
    return pins;
  }

  /**
   * Deletes directory trees that may hold files owned by subordinate ids:
   * plain rm first, then rm inside the user namespace (as `podman unshare rm`).
   */
  async removeTrees(paths: string[]): Promise<void> {
    const stubborn: string[] = [];
    for (const path of paths) {
      try {
        rmSync(path, { recursive: true, force: true });
      } catch {
        stubborn.push(path);
      }
    }
    if (stubborn.length === 0) return;
    const result = await (await this.runner()).run(['rm', '-rf', '--', ...stubborn]);
    if (result.exitCode !== 0) throw new NookError(`cannot remove ${stubborn[0]}: ${result.stderr.trim().split('\n')[0]}`);
  }

  /** Bytes used by blobs and layers (apparent sizes, from the records). */
  private diskBytes(): number {
    let total = 0;
    for (const hex of safeReaddir(join(this.dir, 'blobs', 'sha256'))) total += safeSize(join(this.dir, 'blobs', 'sha256', hex));
    for (const hex of safeReaddir(join(this.dir, 'layers'))) {
      total += readJsonFile<LayerRecord | null>(join(this.dir, 'layers', hex, 'layer.json'), null)?.contentBytes ?? 0;
    }
    return total;
  }

  /** `nook system df` numbers for images. Size of an image = its layers' uncompressed sizes. */
  async diskUsage(): Promise<DiskUsage> {
    const views = await this.listImages();
    const inUse = await this.containerImageIds();
    const layerSize = (diffId: Digest) => this.readLayerRecord(diffId)?.size ?? 0;
    const sizeOfLayers = (layers: Set<string>) => [...layers].reduce((sum, d) => sum + layerSize(d as Digest), 0);
    const all = new Set<string>();
    const active = new Set<string>();
    for (const { record } of views) {
      for (const layer of record.layers) {
        all.add(layer.diffId);
        if (inUse.has(record.id)) active.add(layer.diffId);
      }
    }
    const size = sizeOfLayers(all);
    const blobNames = safeReaddir(join(this.dir, 'blobs', 'sha256'));
    return {
      images: { total: views.length, active: views.filter((v) => inUse.has(v.record.id)).length, size, reclaimable: size - sizeOfLayers(active) },
      layers: { total: safeReaddir(join(this.dir, 'layers')).length, size },
      blobs: { total: blobNames.length, size: blobNames.reduce((s, h) => s + safeSize(join(this.dir, 'blobs', 'sha256', h)), 0) },
    };
  }

  /** Size of an image as `nook images` shows it: the sum of its layers' uncompressed sizes. */
  imageSize(record: ImageRecord): number {
    return record.layers.reduce((sum, layer) => sum + (this.readLayerRecord(layer.diffId)?.size ?? 0), 0);
  }

  /** @internal used by StoreLease */
  writeRecordAndNames(record: ImageRecord, names: string[]): void {
    writeJsonAtomic(this.imagePath(record.id), record);
    if (names.length > 0) {
      const repos = this.readRepositories();
      for (const name of names) repos.names[name] = record.id;
      writeJsonAtomic(this.repositoriesPath, repos);
    }
  }
}

/**
 * One operation's hold on the store (see the top of this file). Everything a
 * lease adds and does not end up in an image record is removed when it ends,
 * so a failed load or pull leaves the store as it was.
 */
export class StoreLease {
  readonly id: string;
  private readonly pins: LeaseFile;
  private readonly added = { blobs: new Set<string>(), layers: new Set<string>() };
  private workDir: string | undefined;

  private constructor(
    readonly store: ImageStore,
    private readonly lock: FileLock,
  ) {
    this.id = lock.path.slice(lock.path.lastIndexOf('/') + 1).replace(/\.lock$/, '');
    this.pins = { pid: process.pid, started: new Date().toISOString(), blobs: [], layers: [], images: [] };
  }

  static async create(store: ImageStore): Promise<StoreLease> {
    const id = `${process.pid}-${randomBytes(6).toString('hex')}`;
    // Under the shared store lock: garbage collection (exclusive) must never see
    // the lease's lock file between its creation and its flock, or it would take
    // the lease for a dead one.
    const storeLock = await store.lockStore('shared');
    try {
      const lock = await acquireLock(join(store.dir, 'leases', `${id}.lock`), store.options.syscalls ? { syscalls: store.options.syscalls } : {});
      return new StoreLease(store, lock);
    } finally {
      storeLock.release();
    }
  }

  /** A private directory under storage/tmp (same filesystem: renames into the store are atomic). */
  tempDir(): string {
    this.workDir ??= ensureDir(join(this.store.dir, 'tmp', this.id));
    const dir = join(this.workDir, randomBytes(6).toString('hex'));
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  private async pin(kind: 'blobs' | 'layers' | 'images', hexes: string[]): Promise<void> {
    const fresh = hexes.filter((h) => !this.pins[kind].includes(h));
    if (fresh.length === 0) return;
    const lock = await this.store.lockStore('shared');
    try {
      this.pins[kind].push(...fresh);
      writeJsonAtomic(join(this.store.dir, 'leases', `${this.id}.json`), this.pins, { durable: false });
    } finally {
      lock.release();
    }
  }

  /** Keeps an image (its record, blobs and layers) from being garbage collected while the lease lives. */
  async pinImage(id: string): Promise<void> {
    await this.pin('images', [id]);
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    await this.pin('blobs', [digestHex(digest)]);
    return existsSync(this.store.blobPath(digest));
  }

  async hasLayer(diffId: Digest): Promise<boolean> {
    await this.pin('layers', [digestHex(diffId)]);
    return this.store.readLayerRecord(diffId) !== null;
  }

  /** Pins blob `digest` and takes its ingest lock (a download in progress); release it when done. */
  async lockBlob(digest: Digest): Promise<FileLock> {
    await this.pin('blobs', [digestHex(digest)]);
    return this.itemLock('blob', digestHex(digest));
  }

  private itemLock(kind: 'blob' | 'layer', hex: string, progress?: Progress): Promise<FileLock> {
    return acquireLock(join(this.store.dir, 'locks', `${kind}-${hex}.lock`), {
      ...(this.store.options.syscalls ? { syscalls: this.store.options.syscalls } : {}),
      ...(progress ? { onWait: () => progress.step(`Waiting for another nook process adding ${kind} sha256:${hex.slice(0, 12)}`) } : {}),
    });
  }

  /**
   * Makes sure blob `digest` is in the store: if missing, `open()` is called
   * for its content, which is streamed to a temporary file, verified (digest,
   * and size when given) and renamed into place. Concurrent ingests of the
   * same blob wait for each other; the second finds it present.
   */
  async ingestBlob(digest: Digest, source: { open: () => Promise<Readable> | Readable; size?: number; what?: string }): Promise<{ path: string; size: number; reused: boolean }> {
    const hex = digestHex(digest);
    const target = this.store.blobPath(digest);
    await this.pin('blobs', [hex]);
    const lock = await this.itemLock('blob', hex);
    try {
      if (existsSync(target)) return { path: target, size: statSync(target).size, reused: true };
      const tmp = join(this.tempDir(), 'blob');
      const hasher = new DigestStream();
      const input = await source.open();
      await pipeline(input, hasher, createWriteStream(tmp, { mode: 0o644 }));
      const what = source.what ?? `blob ${shortDigest(digest)}`;
      if (source.size !== undefined && hasher.size !== source.size) {
        throw new NookError(`${what}: expected ${source.size} bytes, got ${hasher.size}`);
      }
      if (hasher.digest() !== digest) throw new NookError(`${what}: content does not match its digest (got ${hasher.digest()})`);
      renameSync(tmp, target);
      this.added.blobs.add(hex);
      return { path: target, size: hasher.size, reused: false };
    } finally {
      lock.release();
    }
  }

  /**
   * Puts a local file into the store as blob `digest` (verified), moving it
   * when it is inside the store's tmp (same filesystem) and copying otherwise.
   * `expected` is optional: without it the file's own digest is returned.
   */
  async ingestFile(path: string, expected?: Digest, what?: string, task?: ProgressTask): Promise<{ digest: Digest; size: number }> {
    const hasher = new DigestStream();
    if (task) hasher.on('data', () => task.update(hasher.size));
    await pipeline(createReadStream(path), hasher, devNull());
    const digest = hasher.digest();
    if (expected && digest !== expected) throw new NookError(`${what ?? path}: content does not match its digest ${shortDigest(expected)} (got ${shortDigest(digest)})`);
    await this.ingestVerifiedFile(path, digest);
    return { digest, size: hasher.size };
  }

  /**
   * As ingestFile, for a file whose content the caller has just verified to
   * be `digest` (a download hashed as it was written, under its lock):
   * reading 50 MB again to hash it once more cost a tenth of a pull's CPU.
   */
  async ingestVerifiedFile(path: string, digest: Digest): Promise<void> {
    const hex = digestHex(digest);
    await this.pin('blobs', [hex]);
    const lock = await this.itemLock('blob', hex);
    try {
      const target = this.store.blobPath(digest);
      if (!existsSync(target)) {
        const tmp = join(this.tempDir(), 'blob');
        try {
          linkSync(path, tmp);
        } catch {
          copyFileSync(path, tmp);
        }
        renameSync(tmp, target);
        this.added.blobs.add(hex);
      }
    } finally {
      lock.release();
    }
  }

  /** Stores small content (configs, manifests) as a blob; returns its digest. */
  async putBytes(bytes: Buffer): Promise<Digest> {
    const digest = sha256Of(bytes);
    const hex = digestHex(digest);
    await this.pin('blobs', [hex]);
    const target = this.store.blobPath(digest);
    if (!existsSync(target)) {
      writeFileAtomic(target, bytes);
      this.added.blobs.add(hex);
    }
    return digest;
  }

  /**
   * Extracts the layers that are not in the store yet, in one helper process
   * in the user namespace; each layer's uncompressed digest must equal its
   * diffId. Layers are renamed into place only when complete and verified
   * (for a layer extracted while its blob downloads: and the blob stored).
   * `background`: extracted at a lower CPU priority, for layers that have
   * time (a pull's small layers while its biggest one is extracted).
   */
  async unpackLayers(layers: LayerToUnpack[], options: { progress?: Progress; background?: boolean } = {}): Promise<LayerRecord[]> {
    const progress = options.progress ?? silentProgress;
    await this.pin('layers', layers.map((l) => digestHex(l.diffId)));
    await this.pin('blobs', layers.map((l) => digestHex(l.blob)));
    const unique = [...new Map(layers.map((l) => [l.diffId, l])).values()];
    const missing = unique.filter((l) => !this.store.readLayerRecord(l.diffId));
    // lock in a fixed order so two processes never wait for each other in a cycle
    const locks: FileLock[] = [];
    const work: { layer: LayerToUnpack; dir: string }[] = [];
    try {
      for (const layer of [...missing].sort((a, b) => compareText(a.diffId, b.diffId))) locks.push(await this.itemLock('layer', digestHex(layer.diffId), progress));
      for (const layer of missing) {
        if (this.store.readLayerRecord(layer.diffId)) continue; // another process did it meanwhile
        if (!layer.download && !existsSync(this.store.blobPath(layer.blob))) throw new NookError(`${layer.what ?? `layer ${shortDigest(layer.diffId)}`}: blob ${shortDigest(layer.blob)} is not in the store`);
        const dir = this.tempDir();
        mkdirSync(join(dir, 'diff'), { mode: 0o755 });
        work.push({ layer, dir });
      }
      if (work.length > 0) await this.extract(work, progress, options.background ?? false);
    } catch (error) {
      await this.store.removeTrees(work.map((w) => w.dir).filter((d) => existsSync(d))).catch(() => undefined);
      throw error;
    } finally {
      for (const lock of locks) lock.release();
    }
    // a layer another process added while this one's blob was downloading: the download must still end well
    await Promise.all(layers.map((l) => l.download?.stored));
    return layers.map((l) => this.store.readLayerRecord(l.diffId)!);
  }

  private async extract(work: { layer: LayerToUnpack; dir: string }[], progress: Progress, background: boolean): Promise<void> {
    const tasks = work.map((w) => progress.task(`Extracting layer ${shortDigest(w.layer.diffId)}`));
    const runner = await this.store.runner();
    mark(`extraction of ${work.map((w) => shortDigest(w.layer.diffId)).join(', ')} starts`);
    // One helper per CPU, the layers shared out by size: extraction is CPU and
    // metadata bound, and a layer's files are written by one thread.
    const groups = shareOut(work.map((w, index) => ({ index, weight: w.layer.download ? 0 : safeSize(this.store.blobPath(w.layer.blob)) })), availableParallelism());
    const outcomes = await Promise.allSettled(
      groups.map(async (group) => {
        const items = group.map((g) => work[g.index]!);
        const reports = await runExtraction(
          runner,
          {
            layers: items.map((w) => ({
              blob: w.layer.download?.path ?? this.store.blobPath(w.layer.blob),
              target: join(w.dir, 'diff'),
              what: w.layer.what ?? `layer ${shortDigest(w.layer.diffId)}`,
              growing: w.layer.download !== undefined,
              compression: w.layer.compression,
            })),
            ignoreChownErrors: this.store.options.ignoreChownErrors ?? false,
            unmappedHint: runner.unmappedHint,
            ...(background ? { nice: BACKGROUND_NICE } : {}),
          },
          (report) => {
            const task = report.index < 0 ? undefined : tasks[group[report.index]!.index];
            if (!('ok' in report)) task?.update(report.progress);
            else if (report.ok) task?.finish();
            else task?.fail();
          },
          items.map((w) => w.layer.download?.file),
        );
        return reports.map((report) => ({ ...report, index: group[report.index]!.index }));
      }),
    );
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw await downloadErrorFirst(work, failed.reason);
    const reports = outcomes.flatMap((o) => (o.status === 'fulfilled' ? o.value : [])).sort((a, b) => a.index - b.index);
    mark(`extraction of ${work.map((w) => shortDigest(w.layer.diffId)).join(', ')} done`);
    for (const report of reports) {
      if (!report.ok) throw await downloadErrorFirst(work, new NookError(report.message));
      const { layer, dir } = work[report.index]!;
      // A blob that does not match its digest is the error, whatever its content made of the layer.
      await layer.download?.stored;
      if (report.diffId !== layer.diffId) {
        throw new NookError(`${layer.what ?? `layer ${shortDigest(layer.diffId)}`}: its uncompressed content has digest ${report.diffId}, but the image config says ${layer.diffId} (corrupt or tampered image)`);
      }
      const record: LayerRecord = {
        diffId: layer.diffId,
        blob: layer.blob,
        compression: layer.compression,
        size: report.size,
        contentBytes: report.result.bytes,
        whiteoutFormat: report.result.whiteoutFormat,
        overlayMarkers: report.result.whiteouts + report.result.opaqueDirs,
        notes: report.result.notes,
        created: new Date().toISOString(),
      };
      writeJsonAtomic(join(dir, 'layer.json'), record);
      renameSync(dir, this.store.layerDir(layer.diffId));
      this.added.layers.add(digestHex(layer.diffId));
    }
    if (reports.length < work.length) throw new NookError('layer extraction stopped early');
  }

  /**
   * Records an image: stores the config (and manifest), checks that the layers
   * are present and match the config's diff ids, writes the record and points
   * `names` at it, all under the exclusive store lock.
   */
  async commitImage(spec: CommitSpec): Promise<ImageRecord> {
    const configDigest = await this.putBytes(spec.config);
    const id = digestHex(configDigest);
    await this.pinImage(id);
    const config = parseImageConfig(spec.config, `image ${id.slice(0, 12)}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== spec.layers.length || diffIds.some((d, i) => d !== spec.layers[i]!.diffId)) {
      throw new NookError(`image ${id.slice(0, 12)}: its config lists ${diffIds.length} layers that do not match the ${spec.layers.length} layers provided`);
    }
    let manifestDigest: Digest | undefined;
    if (spec.manifest) manifestDigest = await this.putBytes(spec.manifest.bytes);
    const lock = await this.store.lockStore('exclusive');
    try {
      for (const layer of spec.layers) {
        if (!this.store.readLayerRecord(layer.diffId)) throw new NookError(`image ${id.slice(0, 12)}: layer ${shortDigest(layer.diffId)} has not been extracted`);
      }
      const previous = this.store.readRecord(id);
      const record: ImageRecord = {
        id,
        layers: spec.layers,
        repoDigests: [...new Set([...(previous?.repoDigests ?? []), ...(spec.repoDigests ?? [])])],
        stored: previous?.stored ?? new Date().toISOString(),
        source: previous?.source ?? spec.source,
      };
      const mDigest = manifestDigest ?? previous?.manifestDigest;
      if (mDigest) record.manifestDigest = mDigest;
      const mType = spec.manifest?.mediaType ?? previous?.manifestMediaType;
      if (mType) record.manifestMediaType = mType;
      if (config.created) record.created = config.created;
      this.store.writeRecordAndNames(record, spec.names);
      return record;
    } finally {
      lock.release();
    }
  }

  /** Ends the lease: removes what it added that no image uses, its work space, its pins. */
  async release(): Promise<void> {
    try {
      if (this.added.blobs.size > 0 || this.added.layers.size > 0) await this.dropUnused();
      if (this.workDir) await this.store.removeTrees([this.workDir]);
    } finally {
      rmSync(join(this.store.dir, 'leases', `${this.id}.json`), { force: true });
      rmSync(this.lock.path, { force: true });
      this.lock.release();
    }
  }

  private async dropUnused(): Promise<void> {
    const doomed: string[] = [];
    const lock = await this.store.lockStore('exclusive');
    try {
      const used = { blobs: new Set<string>(), layers: new Set<string>() };
      for (const { record } of this.store.listImagesUnlocked()) {
        used.blobs.add(record.id);
        if (record.manifestDigest) used.blobs.add(digestHex(record.manifestDigest));
        for (const layer of record.layers) {
          used.blobs.add(digestHex(layer.blob));
          used.layers.add(digestHex(layer.diffId));
          const source = this.store.readLayerRecord(layer.diffId)?.blob;
          if (source) used.blobs.add(digestHex(source));
        }
      }
      // other live leases' pins protect too
      const others = await this.otherPins();
      for (const hex of this.added.blobs) {
        if (used.blobs.has(hex) || others.blobs.has(hex)) continue;
        rmSync(this.store.blobPath(`sha256:${hex}`), { force: true });
      }
      for (const hex of this.added.layers) {
        if (used.layers.has(hex) || others.layers.has(hex)) continue;
        const dir = this.store.layerDir(`sha256:${hex}`);
        if (!existsSync(dir)) continue;
        const target = join(this.store.dir, 'tmp', `gc-${hex}-${randomBytes(4).toString('hex')}`);
        renameSync(dir, target);
        doomed.push(target);
      }
    } finally {
      lock.release();
    }
    await this.store.removeTrees(doomed);
  }

  private async otherPins(): Promise<{ blobs: Set<string>; layers: Set<string> }> {
    const result = { blobs: new Set<string>(), layers: new Set<string>() };
    const leasesDir = join(this.store.dir, 'leases');
    for (const file of safeReaddir(leasesDir)) {
      if (!file.endsWith('.json') || file === `${this.id}.json`) continue;
      const lease = readJsonFile<LeaseFile | null>(join(leasesDir, file), null);
      for (const b of lease?.blobs ?? []) result.blobs.add(b);
      for (const l of lease?.layers ?? []) result.layers.add(l);
    }
    return result;
  }
}

/**
 * The niceness of helpers extracting layers in the background of a bigger
 * one: the kernel then gives the CPU to the layer the pull waits for.
 */
const BACKGROUND_NICE = 10;

/**
 * Splits weighted items into at most `count` groups of about equal weight
 * (heaviest first, each to the lightest group), none empty.
 */
function shareOut<T extends { weight: number }>(items: T[], count: number): T[][] {
  const groups = Array.from({ length: Math.max(1, Math.min(count, items.length)) }, () => ({ weight: 0, items: [] as T[] }));
  for (const item of [...items].sort((a, b) => b.weight - a.weight)) {
    const lightest = groups.reduce((a, b) => (b.weight < a.weight ? b : a));
    lightest.items.push(item);
    lightest.weight += item.weight;
  }
  return groups.map((g) => g.items).filter((g) => g.length > 0);
}

/**
 * When extracting a layer from a blob still downloading failed, the download's
 * own failure (a digest mismatch, a broken connection) is the real cause, and
 * the extraction's (corrupt gzip from a tampered blob, a file cut short) only
 * its symptom: wait for the downloads to end and prefer their error.
 */
async function downloadErrorFirst(work: { layer: LayerToUnpack }[], error: unknown): Promise<unknown> {
  const downloads = await Promise.allSettled(work.map((w) => w.layer.download?.stored));
  const failed = downloads.find((d): d is PromiseRejectedResult => d.status === 'rejected');
  return failed ? failed.reason : error;
}

/**
 * The unqualified-search registries of registries.conf (as `pull` uses them),
 * for finding local images by short name. A broken registries.conf must not
 * stop `nook images busybox`: it then means docker.io, and `pull` reports it.
 */
function configuredSearchRegistries(): readonly string[] {
  try {
    return searchRegistries(loadRegistriesConfig());
  } catch {
    return ['docker.io'];
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
}

function safeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readFileBuffer(path: string): Buffer {
  return readFileSync(path);
}

function devNull(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}

function isQualified(input: string): boolean {
  try {
    return splitReference(input).domain !== undefined;
  } catch {
    return false;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
