/**
 * What the installed slirp4netns supports. Options appeared over its versions
 * (--enable-sandbox 0.4, --enable-seccomp 0.4, --netns-type/--userns-path 0.4,
 * --cidr 0.3, --disable-host-loopback 0.3, --api-socket 0.3); an older binary
 * refuses an option it does not know, so `--help` is read once and the answer
 * cached in the run root, keyed by the binary's identity (path, size, mtime),
 * so that an upgrade is noticed.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../lib/errors.js';
import { readJsonFile, writeJsonAtomic } from '../lib/atomic.js';
import { ensureDir } from '../lib/paths.js';

export interface Slirp4netnsFeatures {
  binary: string;
  /** "1.2.0", or "" when --version printed nothing useful */
  version: string;
  sandbox: boolean;
  seccomp: boolean;
  apiSocket: boolean;
  readyFd: boolean;
  exitFd: boolean;
  disableHostLoopback: boolean;
  cidr: boolean;
  mtu: boolean;
  ipv6: boolean;
}

interface CacheEntry {
  key: string;
  features: Slirp4netnsFeatures;
}

/** Pure: the features from `slirp4netns --help` and `--version` output. */
export function parseSlirpHelp(binary: string, help: string, versionText: string): Slirp4netnsFeatures {
  const has = (option: string) => help.includes(option);
  return {
    binary,
    version: /slirp4netns version (\S+)/.exec(versionText)?.[1] ?? '',
    sandbox: has('--enable-sandbox'),
    seccomp: has('--enable-seccomp'),
    apiSocket: has('--api-socket'),
    readyFd: has('--ready-fd'),
    exitFd: has('--exit-fd'),
    disableHostLoopback: has('--disable-host-loopback'),
    cidr: has('--cidr'),
    mtu: has('--mtu'),
    ipv6: has('--enable-ipv6'),
  };
}

function binaryKey(binary: string): string {
  const st = statSync(binary);
  return `${binary}:${st.size}:${st.mtimeMs}:${st.ino}`;
}

export async function probeSlirp4netns(binary: string, runRoot: string): Promise<Slirp4netnsFeatures> {
  let key: string;
  try {
    key = binaryKey(binary);
  } catch (error) {
    throw new NookError(`slirp4netns is not usable at ${binary}`, { cause: error });
  }
  const cachePath = join(runRoot, 'network', 'slirp4netns-features.json');
  const cached = readCache(cachePath);
  if (cached?.key === key) return cached.features;

  const [help, version] = await Promise.all([
    (await import('execa')).execa(binary, ['--help'], { reject: false, timeout: 5000, all: true }),
    (await import('execa')).execa(binary, ['--version'], { reject: false, timeout: 5000 }),
  ]);
  const features = parseSlirpHelp(binary, String(help.all ?? ''), String(version.stdout ?? ''));
  if (!features.apiSocket || !features.readyFd || !features.exitFd) {
    throw new NookError(`${binary} (version ${features.version || 'unknown'}) is too old: nook needs --api-socket, --ready-fd and --exit-fd (slirp4netns 0.4 or later)`);
  }
  try {
    ensureDir(join(runRoot, 'network'));
    writeJsonAtomic(cachePath, { key, features } satisfies CacheEntry, { durable: false });
  } catch {
    // a cache we cannot write only costs a probe next time
  }
  return features;
}

function readCache(path: string): CacheEntry | null {
  try {
    return readJsonFile<CacheEntry | null>(path, null);
  } catch {
    return null;
  }
}
