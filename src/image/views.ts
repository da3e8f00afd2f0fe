/**
 * Images as `nook images` and `nook image inspect` show them, in podman's
 * field names (scripts written for podman's JSON keep working).
 */
import type { ImageStore } from './store.js';
import type { ImageConfig, ImageView } from './records.js';

export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  Size: number;
  SharedSize: number;
  VirtualSize: number;
  Labels: Record<string, string>;
  Containers: number;
  Names: string[];
  Digest: string;
  History: string[];
  /** unix seconds */
  Created: number;
  CreatedAt: string;
  Dangling: boolean;
}

/** One row of `nook images`: a name split into repository and tag, or <none>. */
export interface ImageRow {
  id: string;
  repository: string;
  tag: string;
  digest: string;
  created: string;
  size: number;
  names: string[];
}

function createdOf(view: ImageView): string {
  return view.record.created ?? view.record.stored;
}

export function summarize(store: ImageStore, view: ImageView, containers: number): ImageSummary {
  const size = store.imageSize(view.record);
  let labels: Record<string, string> = {};
  try {
    labels = store.readConfig(view.record).config?.Labels ?? {};
  } catch {
    // a damaged record still lists
  }
  const created = createdOf(view);
  return {
    Id: view.record.id,
    ParentId: '',
    RepoTags: view.names,
    RepoDigests: view.record.repoDigests,
    Size: size,
    SharedSize: 0,
    VirtualSize: size,
    Labels: labels,
    Containers: containers,
    Names: view.names,
    Digest: view.record.manifestDigest ?? `sha256:${view.record.id}`,
    History: view.names,
    Created: Math.floor(Date.parse(created) / 1000) || 0,
    CreatedAt: created,
    Dangling: view.names.length === 0,
  };
}

export function rowsOf(store: ImageStore, view: ImageView): ImageRow[] {
  const base = { id: view.record.id, digest: view.record.manifestDigest ?? '', created: createdOf(view), size: store.imageSize(view.record), names: view.names };
  if (view.names.length === 0) return [{ ...base, repository: '<none>', tag: '<none>' }];
  return view.names.map((name) => {
    const colon = name.lastIndexOf(':');
    return { ...base, repository: name.slice(0, colon), tag: name.slice(colon + 1) };
  });
}

/** `nook image inspect`: podman's layout. */
export function inspect(store: ImageStore, view: ImageView) {
  const { record } = view;
  const config: ImageConfig = store.readConfig(record);
  const size = store.imageSize(record);
  const layerDirs = record.layers.map((l) => store.layerDiffDir(l.diffId));
  return {
    Id: record.id,
    Digest: record.manifestDigest ?? `sha256:${record.id}`,
    RepoTags: view.names,
    RepoDigests: record.repoDigests,
    Parent: '',
    Comment: config.history?.[config.history.length - 1]?.comment ?? '',
    Created: config.created ?? record.stored,
    Config: config.config ?? {},
    Version: typeof config.docker_version === 'string' ? config.docker_version : '',
    Author: config.author ?? '',
    Architecture: config.architecture,
    Os: config.os,
    ...(config.variant ? { Variant: config.variant } : {}),
    Size: size,
    VirtualSize: size,
    GraphDriver: {
      Name: 'overlay',
      Data: {
        LowerDir: layerDirs.slice(0, -1).reverse().join(':'),
        UpperDir: layerDirs[layerDirs.length - 1] ?? '',
      },
    },
    RootFS: { Type: 'layers', Layers: record.layers.map((l) => l.diffId) },
    Labels: config.config?.Labels ?? {},
    Annotations: {},
    ManifestType: record.manifestMediaType ?? '',
    User: config.config?.User ?? '',
    History: config.history ?? [],
    NamesHistory: view.names,
  };
}

/** 4520000 -> "4.52 MB" (SI units, three significant digits, as podman prints sizes). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const text = unit === 0 ? String(value) : String(Number(value.toPrecision(3)));
  return `${text} ${units[unit]}`;
}

/** "3 weeks ago", as podman's CREATED column. */
export function humanAge(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 1) return 'Less than a second ago';
  if (seconds < 60) return `${Math.floor(seconds)} seconds ago`;
  const minutes = seconds / 60;
  if (minutes < 2) return 'About a minute ago';
  if (minutes < 60) return `${Math.floor(minutes)} minutes ago`;
  const hours = minutes / 60;
  if (hours < 2) return 'About an hour ago';
  if (hours < 48) return `${Math.floor(hours)} hours ago`;
  const days = hours / 24;
  if (days < 14) return `${Math.floor(days)} days ago`;
  if (days < 60) return `${Math.floor(days / 7)} weeks ago`;
  if (days < 730) return `${Math.floor(days / 30)} months ago`;
  return `${Math.floor(days / 365)} years ago`;
}
