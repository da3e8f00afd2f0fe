/**
 * Reading the two image archive formats once unpacked (./unpack-archive.ts),
 * or an OCI image layout directory given as is:
 *  - docker-archive: manifest.json [{Config, RepoTags, Layers}], as `docker
 *    save` writes it (old style `<id>/layer.tar` or Docker 25+ `blobs/sha256/`);
 *  - OCI image layout: oci-layout, index.json, blobs/sha256/ (oci-archive is a
 *    tar of one). Nested indexes pick the host's platform.
 * Every document is checked against its digest and parsed strictly; the
 * result is plain data for ../load.ts.
 */
import { readFileSync, statSync } from 'node:fs';
import { NookError } from '../../lib/errors.js';
import { isDigest, sha256Of, shortDigest, type Digest } from '../digest.js';
import { parseReference, taggedName, withDefaultTag } from '../reference.js';
import { layerCompression, parseImageConfig, type Compression } from '../records.js';
import { parseManifest, type ImageManifest } from '../registry/manifest.js';
import { chooseManifest, hostPlatform } from '../registry/platform.js';
import { hasMember, resolveMember, type UnpackedArchive } from './unpack-archive.js';

export interface ArchiveLayer {
  /** the member file holding the layer blob */
  path: string;
  diffId: Digest;
  /** known for OCI layouts (from the manifest); docker-archive blobs are hashed when stored */
  digest: Digest | undefined;
  /** what the manifest says; undefined for docker-archive (the content decides) */
  compression: Compression | undefined;
}

export interface ArchiveImage {
  /** "image 1 of FILE" */
  what: string;
  configBytes: Buffer;
  layers: ArchiveLayer[];
  /** full names, e.g. docker.io/library/busybox:latest */
  names: string[];
  /** the OCI manifest, kept so that its digest survives the trip */
  manifest: { bytes: Buffer; mediaType: string; digest: Digest } | undefined;
}

export type ArchiveFormat = 'docker-archive' | 'oci';

export function detectFormat(archive: UnpackedArchive, what: string): ArchiveFormat {
  // Docker 25+ writes both; manifest.json carries the names docker users expect.
  if (hasMember(archive, 'manifest.json')) return 'docker-archive';
  if (hasMember(archive, 'index.json')) return 'oci';
  throw new NookError(`${what} is not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)`);
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new NookError(`${what} is not valid JSON`, { cause: error });
  }
}

/** A name from an archive ("busybox:latest", "docker.io/library/busybox") as a full tagged name, or undefined when it is not one. */
function normaliseName(name: string): string | undefined {
  try {
    const ref = withDefaultTag(parseReference(name));
    return ref.tag !== undefined ? taggedName(ref) : undefined;
  } catch {
    return undefined;
  }
}

export function readDockerArchive(archive: UnpackedArchive, what: string): ArchiveImage[] {
  const doc = readJson(resolveMember(archive, 'manifest.json', what), `manifest.json of ${what}`);
  if (!Array.isArray(doc) || doc.length === 0) throw new NookError(`manifest.json of ${what} is malformed: expected a non-empty list of images`);
  return doc.map((item: unknown, index): ArchiveImage => {
    const image = `image ${index + 1} of ${what}`;
    if (typeof item !== 'object' || item === null) throw new NookError(`manifest.json of ${what} is malformed: entry ${index + 1} is not an object`);
    const entry = item as Record<string, unknown>;
    if (typeof entry.Config !== 'string') throw new NookError(`manifest.json of ${what} is malformed: entry ${index + 1} has no Config`);
    if (!Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === 'string')) throw new NookError(`manifest.json of ${what} is malformed: entry ${index + 1} has no Layers list`);
    if (entry.RepoTags !== undefined && entry.RepoTags !== null && (!Array.isArray(entry.RepoTags) || !entry.RepoTags.every((t) => typeof t === 'string'))) {
      throw new NookError(`manifest.json of ${what} is malformed: entry ${index + 1} has a bad RepoTags`);
    }
    const configBytes = readFileSync(resolveMember(archive, entry.Config, image));
    // The config's file name is its digest in every docker save format: check it.
    const named = /^(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config);
    if (named && sha256Of(configBytes) !== `sha256:${named[1]}`) {
      throw new NookError(`${image}: the config ${entry.Config} does not match its digest (corrupt archive)`);
    }
    const config = parseImageConfig(configBytes, image);
    const layerNames = entry.Layers as string[];
    if (layerNames.length !== config.rootfs.diff_ids.length) {
      throw new NookError(`${image}: manifest.json lists ${layerNames.length} layers but the config has ${config.rootfs.diff_ids.length}`);
    }
    const names: string[] = [];
    for (const tag of (entry.RepoTags as string[] | null | undefined) ?? []) {
      const name = normaliseName(tag);
      if (!name) throw new NookError(`${image}: RepoTags has an invalid name ${JSON.stringify(tag)}`);
      names.push(name);
    }
    return {
      what: image,
      configBytes,
      layers: layerNames.map((layer, i) => ({ path: resolveMember(archive, layer, image), diffId: config.rootfs.diff_ids[i]!, digest: undefined, compression: undefined })),
      names,
      manifest: undefined,
    };
  });
}

function blobPath(archive: UnpackedArchive, digest: string, what: string): string {
  if (!isDigest(digest)) throw new NookError(`${what}: unsupported or invalid digest ${JSON.stringify(digest)}`);
  return resolveMember(archive, `blobs/sha256/${digest.slice(7)}`, what);
}

/** A blob's bytes, checked against its digest and size. */
function readBlob(archive: UnpackedArchive, digest: string, size: number | undefined, what: string): Buffer {
  const path = blobPath(archive, digest, what);
  if (size !== undefined && statSync(path).size !== size) throw new NookError(`${what}: blob ${shortDigest(digest)} has ${statSync(path).size} bytes, the descriptor says ${size}`);
  if (statSync(path).size > 16 * 1024 * 1024) throw new NookError(`${what}: document ${shortDigest(digest)} is implausibly large`);
  const bytes = readFileSync(path);
  if (sha256Of(bytes) !== digest) throw new NookError(`${what}: blob ${shortDigest(digest)} does not match its digest (corrupt archive)`);
  return bytes;
}

export function readOciLayout(archive: UnpackedArchive, what: string): ArchiveImage[] {
  if (hasMember(archive, 'oci-layout')) {
    const layout = readJson(resolveMember(archive, 'oci-layout', what), `oci-layout of ${what}`) as { imageLayoutVersion?: unknown } | null;
    if (!layout || typeof layout.imageLayoutVersion !== 'string') throw new NookError(`oci-layout of ${what} is malformed`);
  }
  const index = readJson(resolveMember(archive, 'index.json', what), `index.json of ${what}`) as { manifests?: unknown } | null;
  if (!index || !Array.isArray(index.manifests)) throw new NookError(`index.json of ${what} is malformed: no "manifests" list`);
  if (index.manifests.length === 0) throw new NookError(`${what} holds no image (index.json lists no manifests)`);
  const images: ArchiveImage[] = [];
  for (const [i, descriptor] of (index.manifests as unknown[]).entries()) {
    const image = `image ${i + 1} of ${what}`;
    if (typeof descriptor !== 'object' || descriptor === null) throw new NookError(`index.json of ${what} is malformed: entry ${i + 1} is not an object`);
    const d = descriptor as { digest?: unknown; size?: unknown; mediaType?: unknown; annotations?: Record<string, unknown> };
    if (typeof d.digest !== 'string') throw new NookError(`index.json of ${what} is malformed: entry ${i + 1} has no digest`);
    const size = typeof d.size === 'number' ? d.size : undefined;
    let bytes = readBlob(archive, d.digest, size, image);
    let manifestDigest = d.digest as Digest;
    let manifest = parseManifest(bytes, typeof d.mediaType === 'string' ? d.mediaType : undefined, image);
    if (manifest.kind === 'list') {
      const chosen = chooseManifest(manifest.manifests, hostPlatform(), image);
      bytes = readBlob(archive, chosen.digest, chosen.size, image);
      manifestDigest = chosen.digest as Digest;
      manifest = parseManifest(bytes, chosen.mediaType, image);
      if (manifest.kind === 'list') throw new NookError(`${image}: nested image indexes are not supported`);
    }
    images.push(imageFromManifest(archive, manifest, bytes, manifestDigest, namesFrom(d.annotations), image));
  }
  return images;
}

function namesFrom(annotations: Record<string, unknown> | undefined): string[] {
  const full = annotations?.['io.containerd.image.name'];
  const ref = annotations?.['org.opencontainers.image.ref.name'];
  for (const candidate of [full, ref]) {
    // A bare tag ("latest") names no repository: the image stays unnamed.
    if (typeof candidate !== 'string' || !/[/:]/.test(candidate)) continue;
    const name = normaliseName(candidate);
    if (name) return [name];
  }
  return [];
}

function imageFromManifest(archive: UnpackedArchive, manifest: ImageManifest, bytes: Buffer, digest: Digest, names: string[], what: string): ArchiveImage {
  const configBytes = readBlob(archive, manifest.config.digest, manifest.config.size, what);
  const config = parseImageConfig(configBytes, what);
  if (manifest.layers.length !== config.rootfs.diff_ids.length) {
    throw new NookError(`${what}: the manifest lists ${manifest.layers.length} layers but the config has ${config.rootfs.diff_ids.length}`);
  }
  const layers = manifest.layers.map((layer, i): ArchiveLayer => {
    const compression = layerCompression(layer.mediaType);
    if (compression === undefined) throw new NookError(`${what}: layer ${i + 1} has media type ${layer.mediaType}, which is not an image layer`);
    let path: string;
    try {
      path = blobPath(archive, layer.digest, what);
    } catch {
      throw new NookError(`${what}: layer ${i + 1} (${shortDigest(layer.digest)}) is not in the archive${layer.urls?.length ? ' (a foreign layer, to be fetched from elsewhere: not supported)' : ''}`);
    }
    if (statSync(path).size !== layer.size) throw new NookError(`${what}: layer ${i + 1} has ${statSync(path).size} bytes, the manifest says ${layer.size}`);
    return { path, diffId: config.rootfs.diff_ids[i]!, digest: layer.digest as Digest, compression };
  });
  return { what, configBytes, layers, names, manifest: { bytes, mediaType: manifest.mediaType, digest } };
}
