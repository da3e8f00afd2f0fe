/**
 * What the store keeps about images and layers (JSON on disk), and the image
 * config (the OCI/Docker config blob) parsed and validated once at the edge.
 */
import { NookError } from '../lib/errors.js';
import { isDigest, type Digest } from './digest.js';
import type { WhiteoutFormat } from './whiteout.js';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type Compression = 'gzip' | 'zstd' | 'none';

/** The compression a layer media type declares; undefined for media types that are not layers. */
export function layerCompression(mediaType: string): Compression | undefined {
  if (/\.tar\+gzip$|\.tar\.gzip$/.test(mediaType)) return 'gzip';
  if (/\.tar\+zstd$/.test(mediaType)) return 'zstd';
  if (/\.tar$|rootfs\.diff\.tar$/.test(mediaType)) return 'none';
  return undefined;
}

/** The OCI media type for a layer of this compression (what `save` writes). */
export function ociLayerMediaType(compression: Compression): string {
  return compression === 'gzip' ? MediaTypes.ociLayerGzip : compression === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
}

export interface LayerRef {
  /** digest of the uncompressed tar: the layer's identity, from the config's rootfs.diff_ids */
  diffId: Digest;
  /**
   * the layer's blob as this image's manifest names it. It may be absent from
   * the store when the layer was already extracted from another image's blob
   * (a pull then skips the download); `save` falls back to LayerRecord.blob,
   * which has the same diff id, so the image id is unchanged.
   */
  blob: Digest;
  blobSize: number;
  compression: Compression;
}

export interface ImageRecord {
  /** sha256 hex of the config blob (what podman and docker call the image id) */
  id: string;
  /** layers bottom first, as in the config's rootfs.diff_ids */
  layers: LayerRef[];
  /** the manifest as pulled (registry digest), when there is one */
  manifestDigest?: Digest;
  manifestMediaType?: string;
  /** "docker.io/library/busybox@sha256:..." */
  repoDigests: string[];
  /** image creation time from the config (ISO 8601), if any */
  created?: string;
  /** when this store received it */
  stored: string;
  /** where it came from: pull, load, import, tag... */
  source: string;
}

export interface LayerRecord {
  diffId: Digest;
  /** the blob it was extracted from (kept while the layer is: `save` needs some blob of every layer) */
  blob: Digest;
  compression: Compression;
  /** bytes of the uncompressed tar */
  size: number;
  /** bytes of file data written */
  contentBytes: number;
  whiteoutFormat: WhiteoutFormat;
  /** whiteouts and opaque directories in the layer (absent in records written before it was counted) */
  overlayMarkers?: number;
  notes: string[];
  created: string;
}

/** The image as a user sees it: the record plus its names. */
export interface ImageView {
  record: ImageRecord;
  /** "docker.io/library/busybox:latest", most recently given first */
  names: string[];
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The part of the config a container runs with (Docker's capitalised field names). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ImageRunConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  /** every other field, kept as is */
  [key: string]: unknown;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/**
 * Parses and checks a config blob. Everything nook later trusts (diff ids,
 * run config field types) is checked here, so a malformed config is refused
 * at load/pull time with one line rather than failing at `run`.
 */
export function parseImageConfig(bytes: Buffer, what: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new NookError(`the config of ${what} is not valid JSON`, { cause: error });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new NookError(`the config of ${what} is not a JSON object`);
  const c = doc as Record<string, unknown>;
  const rootfs = c.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || typeof rootfs !== 'object' || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw new NookError(`the config of ${what} has no rootfs.diff_ids (is it an image config?)`);
  }
  for (const id of rootfs.diff_ids) {
    if (typeof id !== 'string' || !isDigest(id)) throw new NookError(`the config of ${what} lists an invalid layer diff id ${JSON.stringify(id)}`);
  }
  if (c.architecture !== undefined && typeof c.architecture !== 'string') throw new NookError(`the config of ${what} has a non-string architecture`);
  if (c.os !== undefined && typeof c.os !== 'string') throw new NookError(`the config of ${what} has a non-string os`);
  if (c.created !== undefined && typeof c.created !== 'string') throw new NookError(`the config of ${what} has a non-string created time`);
  const run = c.config;
  if (run !== undefined && run !== null) {
    if (typeof run !== 'object' || Array.isArray(run)) throw new NookError(`the config of ${what} has a malformed "config" section`);
    const r = run as Record<string, unknown>;
    for (const key of ['Env', 'Entrypoint', 'Cmd'] as const) {
      if (r[key] !== undefined && r[key] !== null && !isStringArray(r[key])) throw new NookError(`the config of ${what} has a malformed config.${key} (expected a list of strings)`);
    }
    for (const key of ['User', 'WorkingDir', 'StopSignal'] as const) {
      if (r[key] !== undefined && r[key] !== null && typeof r[key] !== 'string') throw new NookError(`the config of ${what} has a malformed config.${key} (expected a string)`);
    }
    if (r.Labels !== undefined && r.Labels !== null && (typeof r.Labels !== 'object' || Object.values(r.Labels as object).some((v) => typeof v !== 'string'))) {
      throw new NookError(`the config of ${what} has malformed config.Labels`);
    }
  }
  if (c.history !== undefined && !Array.isArray(c.history)) throw new NookError(`the config of ${what} has a malformed history`);
  const config = { ...c, architecture: (c.architecture as string | undefined) ?? '', os: (c.os as string | undefined) ?? '' } as ImageConfig;
  // Docker writes null for empty lists; the rest of nook wants absent.
  if (config.config) {
    const cleaned: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(config.config)) if (v !== null) cleaned[k] = v;
    config.config = cleaned as ImageRunConfig;
  }
  return config;
}
