/**
 * `nook save`: images out of the store as
 *  - oci-archive: a tar of an OCI image layout, layer blobs exactly as stored
 *    (compressed as they came), the original manifest when it still fits;
 *  - docker-archive: what Docker 25+ `docker save` writes: manifest.json with
 *    RepoTags (for docker load and older tools) *and* a valid OCI image layout
 *    (oci-layout, index.json, blobs/sha256/), layers uncompressed;
 *  - oci-dir: the OCI layout as a directory.
 * The config blob is written byte for byte, so a save -> load round trip gives
 * the same image id. The output file appears only when complete (written to a
 * temporary name next to it, then renamed).
 */
import { copyFileSync, createReadStream, createWriteStream, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { NookError } from '../lib/errors.js';
import { writeFileAtomic, temporarySibling } from '../lib/atomic.js';
import { silentProgress, type Progress } from '../lib/progress.js';
import { openDecompressed } from './compression.js';
import { DigestStream, digestHex, sha256Of, shortDigest, type Digest } from './digest.js';
import { MediaTypes, ociLayerMediaType, type Compression, type ImageRecord } from './records.js';
import type { ImageStore } from './store.js';

export type SaveFormat = 'docker-archive' | 'oci-archive' | 'oci-dir';
export const saveFormats: readonly SaveFormat[] = ['docker-archive', 'oci-archive', 'oci-dir'];

export interface SaveOptions {
  format: SaveFormat;
  /** a file (archives) or directory (oci-dir); for archives, a stream (stdout) instead */
  output: string | NodeJS.WritableStream;
  progress?: Progress;
}

interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

interface Staged {
  record: ImageRecord;
  /** the names to record in the archive (the ones the user asked for) */
  names: string[];
  manifest: Descriptor;
  configPath: string;
  layerPaths: string[];
}

export async function saveImages(store: ImageStore, inputs: string[], options: SaveOptions): Promise<{ ids: string[] }> {
  if (inputs.length === 0) throw new NookError('nothing to save: name at least one image');
  if (options.format === 'oci-dir' && typeof options.output !== 'string') throw new NookError('oci-dir needs an output directory (-o DIR)');
  const progress = options.progress ?? silentProgress;
  return store.withLease(async (lease) => {
    // resolve first, and pin: an rmi meanwhile must not take the blobs away
    const chosen: { record: ImageRecord; names: string[] }[] = [];
    for (const input of inputs) {
      const view = await store.resolveImage(input);
      await lease.pinImage(view.record.id);
      const existing = chosen.find((c) => c.record.id === view.record.id);
      const names = view.matchedName ? [view.matchedName] : [];
      if (existing) existing.names.push(...names.filter((n) => !existing.names.includes(n)));
      else chosen.push({ record: view.record, names });
    }
    const staging = lease.tempDir();
    mkdirSync(join(staging, 'blobs', 'sha256'), { recursive: true });
    const uncompressed = options.format === 'docker-archive';
    const staged: Staged[] = [];
    for (const { record, names } of chosen) staged.push(await stageImage(store, staging, record, names, uncompressed, progress));

    writeFileAtomic(join(staging, 'oci-layout'), `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`, { durable: false });
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: staged.flatMap((s) =>
        s.names.length === 0
          ? [s.manifest]
          : s.names.map((name) => ({ ...s.manifest, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name } })),
      ),
    };
    writeFileAtomic(join(staging, 'index.json'), `${JSON.stringify(index)}\n`, { durable: false });
    if (options.format === 'docker-archive') {
      const manifest = staged.map((s) => ({
        Config: `blobs/sha256/${s.record.id}`,
        RepoTags: s.names,
        Layers: s.layerPaths,
      }));
      writeFileAtomic(join(staging, 'manifest.json'), `${JSON.stringify(manifest)}\n`, { durable: false });
    }

    progress.step('Storing signatures');
    if (options.format === 'oci-dir') await moveDirectory(staging, options.output as string);
    else await writeTar(staging, options.output);
    return { ids: staged.map((s) => s.record.id) };
  });
}

/** Links (or copies) a store blob into the staging layout. */
function stageBlob(source: string, staging: string, digest: Digest): string {
  const target = join(staging, 'blobs', 'sha256', digestHex(digest));
  if (!existsSync(target)) {
    try {
      linkSync(source, target);
    } catch {
      copyFileSync(source, target);
    }
  }
  return target;
}

async function stageImage(store: ImageStore, staging: string, record: ImageRecord, names: string[], uncompressed: boolean, progress: Progress): Promise<Staged> {
  const configDigest: Digest = `sha256:${record.id}`;
  const configPath = stageBlob(store.blobPath(configDigest), staging, configDigest);
  const layers: Descriptor[] = [];
  const layerPaths: string[] = [];
  let originalBlobs = true;
  for (const layer of record.layers) {
    // the image's own blob when the store has it, else the one the layer was extracted from
    let blob = layer.blob;
    let compression: Compression = layer.compression;
    if (!existsSync(store.blobPath(blob))) {
      const info = store.readLayerRecord(layer.diffId);
      if (!info || !existsSync(store.blobPath(info.blob))) throw new NookError(`image ${record.id.slice(0, 12)}: no blob of layer ${shortDigest(layer.diffId)} is left in the store; pull or load the image again`);
      blob = info.blob;
      compression = info.compression;
      originalBlobs = false;
    }
    const task = progress.task(`Copying blob ${shortDigest(blob)}`);
    if (uncompressed && compression !== 'none') {
      await decompressInto(store.blobPath(blob), staging, layer.diffId, `layer ${shortDigest(layer.diffId)}`);
      blob = layer.diffId;
      compression = 'none';
      originalBlobs = false;
    } else {
      stageBlob(store.blobPath(blob), staging, blob);
    }
    task.finish();
    layers.push({ mediaType: ociLayerMediaType(compression), digest: blob, size: statSync(join(staging, 'blobs', 'sha256', digestHex(blob))).size });
    layerPaths.push(`blobs/sha256/${digestHex(blob)}`);
  }

  // Keep the original OCI manifest when it describes exactly these blobs: its digest (the RepoDigest) survives.
  let manifestBytes: Buffer | undefined;
  let manifestMediaType: string = MediaTypes.ociManifest;
  if (originalBlobs && record.manifestDigest && record.manifestMediaType === MediaTypes.ociManifest && existsSync(store.blobPath(record.manifestDigest))) {
    manifestBytes = readFileSync(store.blobPath(record.manifestDigest));
  }
  if (!manifestBytes) {
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: configDigest, size: statSync(configPath).size },
      layers,
    };
    manifestBytes = Buffer.from(JSON.stringify(manifest));
    manifestMediaType = MediaTypes.ociManifest;
  }
  const manifestDigest = sha256Of(manifestBytes);
  writeFileAtomic(join(staging, 'blobs', 'sha256', digestHex(manifestDigest)), manifestBytes, { durable: false });
  return { record, names, manifest: { mediaType: manifestMediaType, digest: manifestDigest, size: manifestBytes.length }, configPath, layerPaths };
}

async function decompressInto(blobPath: string, staging: string, diffId: Digest, what: string): Promise<void> {
  const target = join(staging, 'blobs', 'sha256', digestHex(diffId));
  if (existsSync(target)) return;
  const tmp = `${target}.partial`;
  const hasher = new DigestStream();
  await pipeline(openDecompressed(blobPath, what).stream, hasher, createWriteStream(tmp));
  if (hasher.digest() !== diffId) throw new NookError(`${what}: the stored blob decompresses to ${hasher.digest()}, not ${diffId} (the store is damaged)`);
  renameSync(tmp, target);
}

async function writeTar(staging: string, output: string | NodeJS.WritableStream): Promise<void> {
  const entries = readdirSync(staging).sort();
  if (typeof output !== 'string') {
    await pipeline(createTar({ cwd: staging, portable: true }, entries), output);
    return;
  }
  const tmp = temporarySibling(output);
  try {
    await createTar({ cwd: staging, portable: true, file: tmp }, entries);
    renameSync(tmp, output);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new NookError(`cannot write ${output}: ${(error as Error).message}`, { cause: error });
  }
}

async function moveDirectory(staging: string, output: string): Promise<void> {
  if (existsSync(output)) {
    if (!statSync(output).isDirectory() || readdirSync(output).length > 0) throw new NookError(`${output} exists and is not an empty directory`);
    rmSync(output, { recursive: true });
  }
  mkdirSync(dirname(output), { recursive: true });
  try {
    renameSync(staging, output);
  } catch {
    // another filesystem: copy
    const copy = async (from: string, to: string): Promise<void> => {
      mkdirSync(to, { recursive: true });
      for (const name of readdirSync(from)) {
        const src = join(from, name);
        const dst = join(to, name);
        if (statSync(src).isDirectory()) await copy(src, dst);
        else await pipeline(createReadStream(src), createWriteStream(dst));
      }
    };
    await copy(staging, output);
  }
}
