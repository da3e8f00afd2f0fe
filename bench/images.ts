/**
 * The images the suite measures with, built here without the internet:
 *
 *  - busybox: the test fixtures (test/fixtures/build-images.ts), one layer of
 *    a static busybox, ~2 MiB.
 *  - debian: `debootstrap --variant=minbase bookworm` from the mirror apt is
 *    configured with, as the first layer (what Debian's official image holds:
 *    no /dev nodes, no apt lists or caches), plus a second layer that deletes
 *    (whiteouts, an opaque directory) and adds files, as application images
 *    do. Written as an OCI layout (pushed to the registry by skopeo) and a
 *    docker-archive (for load), with the fixtures' image writer.
 *
 * The Debian build needs root (debootstrap) and is cached in bench/cache/
 * between runs; an unprivileged run uses the cache or explains how to fill it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImageFixtures, hostPlatform } from '../test/fixtures/build-images.js';
import { buildImage, dockerArchive, writeOciLayout } from '../test/fixtures/image-writer.js';
import { dockerArchiveRepoTags, fixtureFiles } from '../test/fixtures/layout.js';
import { writeTar, type TarEntry } from '../test/fixtures/tar-writer.js';
import { runChecked } from './command.js';
import { paths } from './checkout.js';

/** Bump when the Debian image's recipe changes: cached builds are rebuilt. */
const DEBIAN_IMAGE_VERSION = 1;
const DEBIAN_SUITE = 'bookworm';

export interface BenchImage {
  /** the name `load` gives it (RepoTags of the archive) */
  ref: string;
  /** docker-archive for `load` */
  archive: string;
  /** OCI layout (ref name "latest") for skopeo */
  ociLayout: string;
  layers: number;
  /** sizes of the layers: compressed (as pulled) and uncompressed */
  compressedBytes: number;
  uncompressedBytes: number;
}

export interface DebianImage extends BenchImage {
  /** the first layer as a plain tar: the tree the filesystem benchmark unpacks, copies and deletes */
  treeTar: string;
  /** entries in treeTar */
  treeEntries: number;
  /** where debootstrap took the packages from */
  mirror: string;
}

export interface BenchImages {
  busybox: BenchImage;
  /** busybox root file system as a tar (the runc floor's bundle) */
  busyboxRootfsTar: string;
  debian: DebianImage;
}

export const DEBIAN_REF = 'localhost/bench-debian:latest';

/** The directory of the cached Debian image (it may not exist yet). */
export function debianCacheDir(): string {
  return join(paths.cache, `debian-${DEBIAN_SUITE}-v${DEBIAN_IMAGE_VERSION}`);
}

export class DebianImageMissingError extends Error {
  constructor() {
    super(
      `the Debian image is not built yet (${debianCacheDir()}); building it takes debootstrap, which needs root: ` +
        'run the suite as root once (sudo npm run bench), or leave out start, pull, load and fs (--only exec,memory,network,profile)',
    );
  }
}

/**
 * The busybox fixtures (built if missing, as any user) and the Debian image
 * (built when `canBuildDebian`, i.e. as root, else only read from the cache;
 * undefined when it is not needed).
 */
export async function prepareImages(options: { canBuildDebian: boolean; needDebian: boolean; log: (line: string) => void }): Promise<{ busybox: BenchImage; busyboxRootfsTar: string; debian: DebianImage | undefined }> {
  const fixtures = await buildImageFixtures();
  const fixtureIndex = JSON.parse(await readFile(join(fixtures.dir, fixtureFiles.index), 'utf8')) as { busybox: { layerDigests: string[] } };
  const busyboxArchive = join(fixtures.dir, fixtureFiles.busyboxDockerArchive);
  const busyboxRootfsTar = join(fixtures.dir, fixtureFiles.rootfsTar);
  const busyboxLayerBlob = join(fixtures.dir, fixtureFiles.busyboxOci, 'blobs/sha256', fixtureIndex.busybox.layerDigests[0]!.slice(7));
  const busybox: BenchImage = {
    ref: dockerArchiveRepoTags[0]!,
    archive: busyboxArchive,
    ociLayout: join(fixtures.dir, fixtureFiles.busyboxOci),
    layers: 1,
    compressedBytes: statSync(busyboxLayerBlob).size,
    uncompressedBytes: statSync(busyboxRootfsTar).size,
  };
  let debian: DebianImage | undefined;
  if (options.needDebian) {
    debian = readCachedDebian();
    if (!debian) {
      if (!options.canBuildDebian) throw new DebianImageMissingError();
      debian = await buildDebianImage(options.log);
    }
  }
  return { busybox, busyboxRootfsTar, debian };
}

interface DebianSummary {
  version: number;
  layers: number;
  compressedBytes: number;
  uncompressedBytes: number;
  treeEntries: number;
  mirror: string;
}

function debianFiles(dir: string) {
  return {
    summary: join(dir, 'image.json'),
    archive: join(dir, 'debian-docker-archive.tar'),
    ociLayout: join(dir, 'debian-oci'),
    treeTar: join(dir, 'tree.tar'),
  };
}

function readCachedDebian(): DebianImage | undefined {
  const dir = debianCacheDir();
  const files = debianFiles(dir);
  try {
    const summary = JSON.parse(readFileSync(files.summary, 'utf8')) as DebianSummary;
    if (summary.version !== DEBIAN_IMAGE_VERSION) return undefined;
    if (!existsSync(files.archive) || !existsSync(files.treeTar) || !existsSync(join(files.ociLayout, 'index.json'))) return undefined;
    return {
      ref: DEBIAN_REF,
      archive: files.archive,
      ociLayout: files.ociLayout,
      treeTar: files.treeTar,
      layers: summary.layers,
      compressedBytes: summary.compressedBytes,
      uncompressedBytes: summary.uncompressedBytes,
      treeEntries: summary.treeEntries,
      mirror: summary.mirror,
    };
  } catch {
    return undefined;
  }
}

/**
 * The Debian mirror apt uses: the first `URIs:` of a deb822 source whose
 * Suites name the suite (/etc/apt/sources.list.d/*.sources), else the first
 * matching `deb URI SUITE` line of a .list file.
 */
export function aptMirror(suite = DEBIAN_SUITE, root = '/etc/apt'): string | undefined {
  const sourcesDir = join(root, 'sources.list.d');
  const names = existsSync(sourcesDir) ? readdirSync(sourcesDir).sort() : [];
  for (const name of names.filter((n) => n.endsWith('.sources'))) {
    const mirror = mirrorFromDeb822(readFileSync(join(sourcesDir, name), 'utf8'), suite);
    if (mirror) return mirror;
  }
  const lists = [join(root, 'sources.list'), ...names.filter((n) => n.endsWith('.list')).map((n) => join(sourcesDir, n))];
  for (const file of lists) {
    if (!existsSync(file)) continue;
    const mirror = mirrorFromOneLine(readFileSync(file, 'utf8'), suite);
    if (mirror) return mirror;
  }
  return undefined;
}

/** The URI of the first deb822 stanza of type deb that lists `suite`. */
export function mirrorFromDeb822(text: string, suite: string): string | undefined {
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match) fields.set(match[1]!.toLowerCase(), match[2]!.trim());
    }
    const types = (fields.get('types') ?? '').split(/\s+/);
    const suites = (fields.get('suites') ?? '').split(/\s+/);
    const uri = (fields.get('uris') ?? '').split(/\s+/)[0];
    if (fields.get('enabled') === 'no') continue;
    if (types.includes('deb') && suites.includes(suite) && uri) return uri;
  }
  return undefined;
}

/** The URI of the first `deb [options] URI SUITE ...` line of a sources.list. */
export function mirrorFromOneLine(text: string, suite: string): string | undefined {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').replace(/\[[^\]]*\]/, '').trim();
    const words = line.split(/\s+/);
    if (words[0] === 'deb' && words[2] === suite && words[1]) return words[1];
  }
  return undefined;
}

/** Paths left out of the first layer, as Debian's own image leaves them out. */
const LAYER1_EXCLUDES = ['./dev/*', './proc/*', './sys/*', './run/*', './tmp/*', './var/cache/apt/*', './var/lib/apt/lists/*', './var/log/*', './var/cache/ldconfig/*'];

/**
 * The second layer: what an application image does on top of a distribution.
 * Deletes (a whiteout of /usr/share/locale, an opaque /usr/share/doc that
 * keeps one new file, a deleted file) and adds (1,000 small files of 1 to 8
 * KiB and 8 files of 1 MiB under /opt/app, a changed /etc/motd).
 */
export function debianSecondLayer(): TarEntry[] {
  const entries: TarEntry[] = [
    { type: 'dir', path: 'usr', mode: 0o755 },
    { type: 'dir', path: 'usr/share', mode: 0o755 },
    { type: 'file', path: 'usr/share/.wh.locale', mode: 0o644, content: '' },
    { type: 'dir', path: 'usr/share/doc', mode: 0o755 },
    { type: 'file', path: 'usr/share/doc/.wh..wh..opq', mode: 0o644, content: '' },
    { type: 'file', path: 'usr/share/doc/README.app', mode: 0o644, content: 'documentation removed to keep the image small\n' },
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/.wh.issue.net', mode: 0o644, content: '' },
    { type: 'file', path: 'etc/motd', mode: 0o644, content: 'nook benchmark image\n' },
    { type: 'dir', path: 'opt', mode: 0o755 },
    { type: 'dir', path: 'opt/app', mode: 0o755 },
  ];
  // Deterministic content that does not compress to nothing (a pseudo-random stream).
  let state = 0x2545f491;
  const bytes = (n: number) => {
    const buffer = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      buffer[i] = (state & 0xff) % 64 + 32; // printable text, compresses ~25%
    }
    return buffer;
  };
  for (let d = 0; d < 10; d++) {
    entries.push({ type: 'dir', path: `opt/app/lib${d}`, mode: 0o755 });
    for (let f = 0; f < 100; f++) {
      entries.push({ type: 'file', path: `opt/app/lib${d}/module${f}.js`, mode: 0o644, content: bytes(1024 * (1 + ((d * 100 + f) % 8))) });
    }
  }
  for (let f = 0; f < 8; f++) entries.push({ type: 'file', path: `opt/app/data${f}.bin`, mode: 0o644, content: bytes(1 << 20) });
  entries.push({ type: 'dir', path: 'usr/local', mode: 0o755 }, { type: 'dir', path: 'usr/local/bin', mode: 0o755 });
  entries.push({ type: 'symlink', path: 'usr/local/bin/app', target: '/opt/app/lib0/module0.js' });
  return entries;
}

async function buildDebianImage(log: (line: string) => void): Promise<DebianImage> {
  const mirror = aptMirror();
  if (!mirror) throw new Error(`no Debian mirror for ${DEBIAN_SUITE} in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list`);
  const dir = debianCacheDir();
  const build = `${dir}.build-${process.pid}`;
  await rm(build, { recursive: true, force: true });
  await mkdir(build, { recursive: true, mode: 0o755 });
  try {
    const rootfs = join(build, 'rootfs');
    log(`building the Debian image: debootstrap --variant=minbase ${DEBIAN_SUITE} from ${mirror} (a minute or two, cached in ${dir})`);
    await runChecked({ file: 'debootstrap', args: ['--variant=minbase', DEBIAN_SUITE, rootfs, mirror] }, { timeoutMs: 30 * 60_000 });
    const files = debianFiles(build);
    // GNU tar as root keeps owners; pax is the format registries' images use.
    await runChecked({
      file: 'tar',
      args: [
        '--create', '--file', files.treeTar, '--directory', rootfs, '--numeric-owner', '--sort=name', '--format=pax',
        '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '--mtime=2024-01-01 00:00:00Z',
        ...LAYER1_EXCLUDES.map((pattern) => `--exclude=${pattern}`), '.',
      ],
    });
    await rm(rootfs, { recursive: true, force: true });
    const layer1 = await readFile(files.treeTar);
    const layer2 = writeTar(debianSecondLayer());
    log(`Debian layers: ${(layer1.length / 1e6).toFixed(0)} MB and ${(layer2.length / 1e6).toFixed(0)} MB uncompressed; compressing`);
    const image = buildImage([layer1, layer2], { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] }, hostPlatform());
    await writeOciLayout(files.ociLayout, image);
    await writeFile(files.archive, dockerArchive(image, [DEBIAN_REF]));
    const listing = await runChecked({ file: 'tar', args: ['-tf', files.treeTar] });
    const summary: DebianSummary = {
      version: DEBIAN_IMAGE_VERSION,
      layers: image.layers.length,
      compressedBytes: image.layers.reduce((n, layer) => n + layer.size, 0),
      uncompressedBytes: layer1.length + layer2.length,
      treeEntries: listing.stdout.split('\n').filter(Boolean).length,
      mirror,
    };
    // image.json last: its presence marks a complete build.
    await writeFile(files.summary, `${JSON.stringify(summary, null, 2)}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(build, dir);
  } finally {
    await rm(build, { recursive: true, force: true });
  }
  const built = readCachedDebian();
  if (!built) throw new Error(`the Debian image build in ${dir} is incomplete`);
  return built;
}
