/**
 * `nook pull`: resolve a reference to a registry (short names through the
 * unqualified-search list, registries.conf locations and mirrors), fetch the
 * manifest (choosing the platform from a list), the config, then every layer
 * in parallel, each unpacked while it downloads, and record the image.
 */
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { NookError } from '../../lib/errors.js';
import { mark } from '../../lib/timing.js';
import { silentProgress, type Progress } from '../../lib/progress.js';
import { formatReference, pullCandidates, splitReference, type ImageReference } from '../reference.js';
import { findCredentials, type Credentials } from './auth-file.js';
import { downloadBlob } from './blob-download.js';
import { fetchManifest, openBlob, sha256Hex, type FetchedManifest } from './client.js';
import { GrowingFile } from '../growing-file.js';
import { checkDecompressors } from './decompress.js';
import type { PullDestination, PulledLayer } from './destination.js';
import { RegistryError, isRegistryError } from './errors.js';
import { formatPlatform, type ImageManifest, type Platform } from './manifest.js';
import { chooseManifest, hostPlatform } from './platform.js';
import { isInsecureRegistry, loadRegistriesConfig, pullSources, searchRegistries, type PullSource, type RegistriesConfig } from './registries-conf.js';
import { RegistrySession } from './session.js';
import { readBody, Transport } from './transport.js';

export interface PullOptions {
  destination: PullDestination;
  /** --platform; default: the host's */
  platform?: Platform | undefined;
  /** --creds user:pass (wins over auth files) */
  credentials?: Credentials | undefined;
  /** --authfile */
  authFile?: string | undefined;
  /** --tls-verify; undefined: verify unless registries.conf marks the registry insecure */
  tlsVerify?: boolean | undefined;
  /** --cert-dir */
  certDir?: string | undefined;
  progress?: Progress;
  /** parallel layer downloads (default 6, as podman) */
  concurrency?: number;
  /** layers unpacked at once (default: the number of CPUs; unpacking is CPU and metadata bound) */
  unpackConcurrency?: number;
  /** registries.conf as loaded by loadRegistriesConfig() when not given */
  registries?: RegistriesConfig;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
  /** --debug lines */
  log?: ((line: string) => void) | undefined;
}

export interface PullResult {
  /** image id: the config digest */
  id: string;
  reference: ImageReference;
  /** "127.0.0.1:5000/busybox:latest" */
  name: string;
  manifestDigest: string;
  /** the digest of the list the image was chosen from, if any */
  listDigest: string | undefined;
  platform: Platform;
  layers: { digest: string; diffId: string; size: number; skipped: boolean }[];
  /** things worth telling the user that did not stop the pull */
  warnings: string[];
}

/** Parses "--creds user:pass" (the password may contain ':'). */
export function parseCreds(text: string): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new NookError('--creds must be USERNAME:PASSWORD');
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

interface Resolved {
  reference: ImageReference;
  source: PullSource;
  session: RegistrySession;
  top: FetchedManifest;
}

export async function pullImage(input: string, options: PullOptions): Promise<PullResult> {
  const env = options.env ?? process.env;
  const progress = options.progress ?? silentProgress;
  const registries = options.registries ?? loadRegistriesConfig(env);
  // One failed layer stops the others (their partial files stay, for the next try), as does the caller's signal.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const transport = new Transport({
    signal,
    tlsVerify: options.tlsVerify,
    certDir: options.certDir,
    isInsecure: (host) => isInsecureRegistry(registries, host),
    env,
    log: options.log,
  });
  try {
    // $NOOK_UNQUALIFIED_SEARCH_REGISTRIES says where short names go: aliases do not override it.
    const aliased = env.NOOK_UNQUALIFIED_SEARCH_REGISTRIES === undefined ? expandAlias(input, registries) : input;
    mark('pull: start');
    const resolved = await resolveImage(aliased, options, registries, transport, progress);
    mark('pull: manifest fetched');
    return await pullResolved(resolved, { ...options, signal }, progress, stop);
  } finally {
    transport.close();
  }
}

/** [aliases] in registries.conf: "fedora" -> "registry.fedoraproject.org/fedora", keeping the tag or digest. */
function expandAlias(input: string, registries: RegistriesConfig): string {
  const parts = splitReference(input);
  if (parts.domain !== undefined) return input;
  const target = registries.aliases[parts.path];
  if (!target) return input;
  return `${target}${parts.tag !== undefined ? `:${parts.tag}` : ''}${parts.digest !== undefined ? `@${parts.digest}` : ''}`;
}

/** Errors after which the next search registry or mirror is worth trying. */
function tryNext(error: unknown): boolean {
  return isRegistryError(error, 'not-found', 'denied', 'unauthorized', 'unreachable', 'tls', 'server');
}

async function resolveImage(input: string, options: PullOptions, registries: RegistriesConfig, transport: Transport, progress: Progress): Promise<Resolved> {
  const env = options.env ?? process.env;
  const candidates = pullCandidates(input, searchRegistries(registries, env));
  const failures: { name: string; error: unknown }[] = [];
  for (const reference of candidates) {
    const byDigest = reference.digest !== undefined;
    const sources = pullSources(registries, `${reference.domain}/${reference.path}`, byDigest);
    for (const source of sources) {
      const manifestRef = reference.digest ?? reference.tag ?? 'latest';
      const shown = `${source.name}${reference.digest ? `@${reference.digest}` : `:${manifestRef}`}`;
      progress.step(`Trying to pull ${shown}...`);
      const found = options.credentials ? undefined : findCredentials(source.name, { authFile: options.authFile, env });
      const session = new RegistrySession({
        transport,
        host: source.host,
        repository: source.repository,
        credentials: options.credentials ?? found,
        credentialsSource: options.credentials ? '--creds' : found?.file,
      });
      try {
        const top = await fetchManifest(session, manifestRef);
        return { reference, source, session, top };
      } catch (error) {
        failures.push({ name: shown, error });
        if (!tryNext(error)) throw error;
        options.log?.(`${shown}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  if (failures.length === 1) throw failures[0]!.error;
  const summary = failures.map((f) => (f.error instanceof Error ? f.error.message : String(f.error))).join('; ');
  const first = failures[0]?.error;
  throw new RegistryError(isRegistryError(first) ? first.kind : 'not-found', `cannot pull ${input}: ${summary}`, {
    detail: failures.map((f) => `${f.name}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('\n'),
  });
}

interface ImageConfigSummary {
  diffIds: string[];
  platform: Platform | undefined;
}

function parseConfig(bytes: Buffer, what: string): ImageConfigSummary {
  let doc: { rootfs?: { type?: unknown; diff_ids?: unknown }; os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch (error) {
    throw new RegistryError('server', `the config of ${what} is not valid JSON`, { cause: error });
  }
  const ids = doc.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d): d is string => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new RegistryError('server', `the config of ${what} has no valid rootfs.diff_ids`);
  }
  const platform =
    typeof doc.os === 'string' && typeof doc.architecture === 'string'
      ? { os: doc.os, architecture: doc.architecture, variant: typeof doc.variant === 'string' && doc.variant ? doc.variant : undefined }
      : undefined;
  return { diffIds: ids, platform };
}

async function fetchConfig(session: RegistrySession, image: ImageManifest, what: string): Promise<Buffer> {
  const { body } = await openBlob(session, image.config.digest);
  const bytes = await readBody(body, 16 * 1024 * 1024);
  if (bytes.length !== image.config.size || `sha256:${sha256Hex(bytes)}` !== image.config.digest) {
    throw new RegistryError('digest', `the config ${image.config.digest} of ${what} does not match its digest`);
  }
  return bytes;
}

async function pullResolved(resolved: Resolved, options: PullOptions, progress: Progress, stop: AbortController): Promise<PullResult> {
  // The image is named as asked for, even when a mirror or another location served it.
  const { session, reference } = resolved;
  const warnings: string[] = [];
  const name = formatReference(reference);
  const wanted = options.platform ?? hostPlatform();

  let imageFetched = resolved.top;
  let list: { bytes: Buffer; digest: string; mediaType: string } | undefined;
  if (resolved.top.manifest.kind === 'list') {
    const entry = chooseManifest(resolved.top.manifest.manifests, wanted, name);
    list = { bytes: resolved.top.bytes, digest: resolved.top.digest, mediaType: resolved.top.mediaType };
    imageFetched = await fetchManifest(session, entry.digest);
    if (imageFetched.manifest.kind !== 'image') throw new RegistryError('unsupported', `${name}: the entry for ${formatPlatform(wanted)} is itself a list`);
  }
  const image = imageFetched.manifest as ImageManifest;
  await checkDecompressors(image.layers.map((l) => l.compression));

  progress.step('Getting image source signatures');
  const configBytes = await fetchConfig(session, image, name);
  mark('pull: config fetched');
  const config = parseConfig(configBytes, name);
  if (config.diffIds.length !== image.layers.length) {
    throw new RegistryError('server', `${name}: the manifest has ${image.layers.length} layers but the config lists ${config.diffIds.length}`);
  }
  const platform = config.platform ?? wanted;
  if (!list && options.platform && config.platform && (config.platform.os !== wanted.os || config.platform.architecture !== wanted.architecture)) {
    warnings.push(`image platform (${formatPlatform(config.platform)}) does not match the expected platform (${formatPlatform(wanted)})`);
  }

  const layers: PulledLayer[] = image.layers.map((descriptor, i) => ({ descriptor, diffId: config.diffIds[i]! }));
  const unpackSlots = new Slots(options.unpackConcurrency ?? availableParallelism());
  // The pull waits for its biggest layer most: the others are extracted at a lower CPU priority.
  const biggest = Math.max(...layers.map((l) => l.descriptor.size));
  const outcome = await runLimited(layers, options.concurrency ?? 6, async (layer) => {
    try {
      return await pullLayer(session, layer, options, progress, unpackSlots, layer.descriptor.size < biggest);
    } catch (error) {
      stop.abort(error);
      throw error;
    }
  });

  mark('pull: layers in');
  const configTask = progress.task(`Copying config ${shortHex(image.config.digest)}`, configBytes.length);
  configTask.update(configBytes.length);
  configTask.finish();
  progress.step('Writing manifest to image destination');
  const id = await options.destination.addImage({
    reference,
    manifestBytes: imageFetched.bytes,
    manifestDigest: imageFetched.digest,
    manifestMediaType: imageFetched.mediaType,
    list,
    configBytes,
    configDigest: image.config.digest,
    layers,
    platform,
  });
  // Only now: until the image is recorded, a failed pull's store lease drops the layers it
  // added, and these complete downloads (hard links of the store's blobs) are what the next try reuses.
  await Promise.all(layers.map((l) => rm(partialPathOf(options.destination, l.descriptor.digest), { force: true })));
  return {
    id,
    reference,
    name,
    manifestDigest: imageFetched.digest,
    listDigest: list?.digest,
    platform,
    layers: layers.map((l, i) => ({ digest: l.descriptor.digest, diffId: l.diffId, size: l.descriptor.size, skipped: outcome[i]! })),
    warnings,
  };
}

function shortHex(digest: string): string {
  return digest.slice('sha256:'.length, 'sha256:'.length + 12);
}

function partialPathOf(destination: PullDestination, digest: string): string {
  return join(destination.partialDir, `${digest.slice('sha256:'.length)}.partial`);
}

/** Downloads and unpacks one layer unless the store has it; true when it was skipped. */
async function pullLayer(session: RegistrySession, layer: PulledLayer, options: PullOptions, progress: Progress, unpackSlots: Slots, background: boolean): Promise<boolean> {
  const { destination } = options;
  const digest = layer.descriptor.digest;
  const label = `Copying blob ${shortHex(digest)}`;
  if (await destination.hasLayer(layer.diffId)) {
    progress.task(label).finish('skipped: already exists');
    return true;
  }
  const lock = await destination.lockPartial(digest);
  try {
    // another pull may have brought it in while we waited for the lock
    if (await destination.hasLayer(layer.diffId)) {
      progress.task(label).finish('skipped: already exists');
      return true;
    }
    if (await destination.hasBlob(digest)) {
      progress.task(label).finish('skipped: already exists');
      await unpackSlots.run(layer.descriptor.size, () => destination.addLayer(undefined, layer, { background }));
      return false;
    }
    // The layer is extracted from the partial file while it downloads; the
    // store keeps it only once the download is complete and verified.
    const partialPath = partialPathOf(destination, digest);
    const task = progress.task(label, layer.descriptor.size);
    const file = new GrowingFile();
    mark(`pull: download of ${shortHex(digest)} starts`);
    const done = downloadBlob({
      session,
      descriptor: layer.descriptor,
      partialPath,
      onProgress: (n) => {
        task.update(n);
        file.advance(n);
      },
      signal: options.signal,
    }).then(
      () => {
        mark(`pull: download of ${shortHex(digest)} done`);
        task.finish();
        file.finish(layer.descriptor.size);
      },
      (error: unknown) => {
        task.fail();
        file.fail(error instanceof Error ? error : new Error(String(error)));
        throw error;
      },
    );
    const added = unpackSlots.run(layer.descriptor.size, () => destination.addLayer({ path: partialPath, file, done }, layer, { background }));
    const [downloaded, unpacked] = await Promise.allSettled([done, added]);
    mark(`pull: layer ${shortHex(digest)} in`);
    if (downloaded.status === 'rejected') throw downloaded.reason;
    if (unpacked.status === 'rejected') throw unpacked.reason;
    return false;
  } finally {
    lock.release();
  }
}

/**
 * At most `size` tasks at once. Waiting tasks start largest first: the
 * biggest layer is the longest to unpack, so starting it early shortens the
 * whole pull (longest-processing-time-first scheduling).
 */
class Slots {
  private free: number;
  private readonly waiting: { weight: number; start: () => void }[] = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  async run<T>(weight: number, fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else
      await new Promise<void>((start) => {
        this.waiting.push({ weight, start });
        this.waiting.sort((a, b) => b.weight - a.weight);
      });
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.free++;
    }
  }
}

/**
 * Runs `fn` over `items` with at most `limit` at once, in order of start.
 * The first failure stops new work; running tasks finish before it is thrown,
 * so no download is left writing in the background.
 */
async function runLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
  return results;
}
