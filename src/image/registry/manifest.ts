/**
 * Manifests as registries serve them, parsed once into typed values:
 * Docker schema 2 and OCI image manifests (a config and layers), Docker
 * manifest lists and OCI indexes (one manifest per platform). Everything is
 * validated here (digests, sizes, media types) so that the pull can trust it.
 */
import { RegistryError } from './errors.js';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
} as const;

/** What a manifest request accepts, most wanted first. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
  // asked for so that an old registry answers with its real type, which is then refused clearly
  MediaType.DockerSchema1Signed,
  MediaType.DockerSchema1,
].join(', ');

export type Compression = 'gzip' | 'zstd' | 'none';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

export interface LayerDescriptor extends Descriptor {
  compression: Compression;
}

export interface ImageManifest {
  kind: 'image';
  mediaType: string;
  config: Descriptor;
  layers: LayerDescriptor[];
  annotations?: Record<string, string> | undefined;
}

export interface ManifestListEntry extends Descriptor {
  platform: Platform | undefined;
}

export interface ManifestList {
  kind: 'list';
  mediaType: string;
  manifests: ManifestListEntry[];
}

export type Manifest = ImageManifest | ManifestList;

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const OTHER_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** A digest nook can verify; others are refused with a clear message rather than trusted unverified. */
export function checkDigest(digest: unknown, what: string): string {
  if (typeof digest === 'string' && DIGEST.test(digest)) return digest;
  if (typeof digest === 'string' && OTHER_DIGEST.test(digest)) throw new RegistryError('unsupported', `${what} uses digest algorithm ${digest.split(':')[0]}, which nook does not verify (only sha256)`);
  throw new RegistryError('server', `${what} has an invalid digest ${JSON.stringify(digest)}`);
}

export function compressionOf(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.DockerLayerGzip:
    case MediaType.DockerForeignLayerGzip:
    case MediaType.OciLayerGzip:
    case MediaType.OciLayerNondistributableGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
    case MediaType.OciLayerNondistributableZstd:
      return 'zstd';
    case MediaType.OciLayer:
    case MediaType.OciLayerNondistributable:
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    default:
      return undefined;
  }
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new RegistryError('server', `${what} is not an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.mediaType !== 'string') throw new RegistryError('server', `${what} has no mediaType`);
  const digest = checkDigest(v.digest, what);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw new RegistryError('server', `${what} has an invalid size`);
  const descriptor: Descriptor = { mediaType: v.mediaType, digest, size: v.size };
  if (Array.isArray(v.urls)) descriptor.urls = v.urls.filter((u): u is string => typeof u === 'string');
  if (typeof v.annotations === 'object' && v.annotations !== null) descriptor.annotations = v.annotations as Record<string, string>;
  return descriptor;
}

/**
 * Parses a manifest. `contentType` is the response's Content-Type, used when
 * the document has no mediaType of its own (OCI allows leaving it out).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new RegistryError('server', `the manifest of ${what} is not valid JSON`, { cause: error });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RegistryError('server', `the manifest of ${what} is not a JSON object`);
  const headerType = contentType?.split(';')[0]?.trim();
  let mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : headerType ?? '';
  if (doc.schemaVersion === 1 || mediaType === MediaType.DockerSchema1 || mediaType === MediaType.DockerSchema1Signed) {
    throw new RegistryError('unsupported', `${what} only has a Docker schema 1 manifest, which nook does not support (the registry or image is too old)`);
  }
  if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    // An OCI document without mediaType: tell an index from a manifest by its fields.
    mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  }
  if (mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList) {
    if (!Array.isArray(doc.manifests)) throw new RegistryError('server', `the manifest list of ${what} has no "manifests"`);
    const manifests = doc.manifests.map((m, i): ManifestListEntry => {
      const descriptor = parseDescriptor(m, `entry ${i} of the manifest list of ${what}`);
      const p = (m as { platform?: Record<string, unknown> }).platform;
      const platform =
        p && typeof p.os === 'string' && typeof p.architecture === 'string'
          ? { os: p.os, architecture: p.architecture, variant: typeof p.variant === 'string' && p.variant ? p.variant : undefined }
          : undefined;
      return { ...descriptor, platform };
    });
    return { kind: 'list', mediaType, manifests };
  }
  if (mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest) {
    const config = parseDescriptor(doc.config, `the config descriptor of ${what}`);
    if (!Array.isArray(doc.layers)) throw new RegistryError('server', `the manifest of ${what} has no "layers"`);
    const layers = doc.layers.map((l, i): LayerDescriptor => {
      const descriptor = parseDescriptor(l, `layer ${i} of ${what}`);
      const compression = compressionOf(descriptor.mediaType);
      if (compression === undefined) throw new RegistryError('unsupported', `layer ${i} of ${what} has media type ${descriptor.mediaType}, which is not an image layer nook can unpack (is this an artifact rather than a container image?)`);
      return { ...descriptor, compression };
    });
    if (config.mediaType !== MediaType.DockerConfig && config.mediaType !== MediaType.OciConfig) {
      throw new RegistryError('unsupported', `${what} is not a container image: its config has media type ${config.mediaType}`);
    }
    const annotations = typeof doc.annotations === 'object' && doc.annotations !== null ? (doc.annotations as Record<string, string>) : undefined;
    return { kind: 'image', mediaType, config, layers, annotations };
  }
  throw new RegistryError('unsupported', `the manifest of ${what} has media type ${mediaType}, which nook does not know`);
}

/** Canonical "os/arch[/variant]". */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}
