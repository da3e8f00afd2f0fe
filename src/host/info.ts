/**
 * `nook info`: what nook is and what it will do on this machine: versions,
 * the rootless identity and its id mappings, paths, and the storage driver,
 * network mode and cgroup manager it picks, each with the reason.
 */
import { readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { buildIdMapping } from '../idmap/mapping.js';
import type { NookPaths } from '../lib/paths.js';
import type { IdMapEntry } from '../runtime/plan.js';
import { decideCgroupManager, type CgroupManagerChoice } from './cgroup-manager.js';
import { executorPath, packageRoot } from './executor-location.js';
import { HostFacts } from './facts.js';
import { decideNetworkMode, type NetworkModeChoice } from './network-mode.js';
import { decideStorageDriver, type StorageDriverChoice } from './storage-driver.js';
import { realHostView, type HostView } from './view.js';

export interface ToolInfo {
  path: string | null;
  /** first version-looking line of `--version`, or the owning package's version; null when unknown */
  version: string | null;
}

export interface HostInfo {
  nook: { version: string; executor: string };
  node: { version: string };
  host: { kernel: string; distribution: string; arch: string };
  rootless: {
    uid: number;
    gid: number;
    user: string;
    uidMap: IdMapEntry[];
    gidMap: IdMapEntry[];
    /** why the maps are what they are: the runtime's warnings (single mapping...) or where the ranges came from */
    mapping: string;
  };
  paths: { root: string; runRoot: string };
  storage: StorageDriverChoice;
  network: NetworkModeChoice;
  cgroups: CgroupManagerChoice;
  tools: Record<'newuidmap' | 'newgidmap' | 'slirp4netns' | 'fuse-overlayfs' | 'unshare', ToolInfo>;
}

async function nookVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(`${packageRoot()}/package.json`, 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * "slirp4netns version 1.2.0" -> "1.2.0"; "fuse-overlayfs: version 1.10" -> "1.10". Lines naming the
 * tool come first: fuse-overlayfs prints fusermount3's version before its own.
 */
export function versionFrom(output: string, name: string): string | null {
  const lines = output.split('\n').filter((l) => l.trim() && !/^usage/i.test(l.trim()));
  const ordered = [...lines.filter((l) => l.includes(name)), ...lines.filter((l) => !l.includes(name))];
  for (const line of ordered) {
    const match = /\bversion:?\s+v?(\d+(?:\.\d+)+\S*)/i.exec(line) ?? /\b(\d+\.\d+(?:\.\d+)*)\b/.exec(line);
    if (match) return match[1]!;
  }
  return null;
}

/** shadow's newuidmap has no --version: ask the package manager which package owns it. */
async function packageVersion(view: HostView, path: string): Promise<string | null> {
  const dpkg = await view.which('dpkg-query');
  if (dpkg) {
    const owner = await view.run(dpkg, ['-S', path], { timeoutMs: 2000 });
    const pkg = /^([^:\s]+)(?::\S+)?:\s/.exec(owner.stdout)?.[1];
    if (!pkg) return null;
    const version = await view.run(dpkg, ['-W', '-f=${Version}', pkg], { timeoutMs: 2000 });
    return version.exitCode === 0 && version.stdout.trim() ? `${pkg} ${version.stdout.trim()}` : null;
  }
  const rpm = await view.which('rpm');
  if (rpm) {
    const result = await view.run(rpm, ['-qf', '--qf', '%{NAME} %{VERSION}-%{RELEASE}', path], { timeoutMs: 2000 });
    return result.exitCode === 0 ? result.stdout.trim() || null : null;
  }
  return null;
}

async function toolInfo(view: HostView, name: string): Promise<ToolInfo> {
  const path = await view.which(name);
  if (!path) return { path: null, version: null };
  const result = await view.run(path, ['--version'], { timeoutMs: 2000 });
  const version = versionFrom(`${result.stdout}\n${result.stderr}`, name) ?? (await packageVersion(view, path));
  return { path, version };
}

export async function gatherInfo(paths: NookPaths, options: { view?: HostView } = {}): Promise<HostInfo> {
  const view = options.view ?? realHostView();
  const facts = new HostFacts(view, paths, { executorPath: executorPath() });
  const toolNames = ['newuidmap', 'newgidmap', 'slirp4netns', 'fuse-overlayfs', 'unshare'] as const;
  const [version, distribution, subids, uidHelper, gidHelper, storage, network, cgroups, tools] = await Promise.all([
    nookVersion(),
    facts.distribution(),
    facts.subids(),
    facts.idMapHelper('newuidmap'),
    facts.idMapHelper('newgidmap'),
    facts.storage(),
    facts.network(),
    facts.cgroups(),
    Promise.all(toolNames.map((name) => toolInfo(view, name))),
  ]);

  // the mapping the runtime will use, computed by the runtime's own rules
  const mapping = buildIdMapping(
    { name: view.userName, uid: view.uid, gid: view.gid },
    { uids: subids.uids.ranges, gids: subids.gids.ranges },
    { newuidmap: uidHelper.path, newgidmap: gidHelper.path },
  );
  const origins = [...new Set([subids.uids.origin, subids.gids.origin])].join(' and ');
  const why = mapping.warnings.length > 0 ? mapping.warnings.join('; ') : view.uid === 0 ? 'real root: ids map to themselves' : `subordinate ids from ${origins}, written by newuidmap/newgidmap`;

  return {
    nook: { version, executor: facts.options.executorPath },
    node: { version: process.version },
    host: { kernel: view.kernelRelease, distribution: distribution.prettyName, arch: arch() },
    rootless: {
      uid: view.uid,
      gid: view.gid,
      user: facts.user,
      uidMap: mapping.uidMap,
      gidMap: mapping.gidMap,
      mapping: why,
    },
    paths: { root: paths.root, runRoot: paths.runRoot },
    storage: decideStorageDriver(storage),
    network: decideNetworkMode(network),
    cgroups: decideCgroupManager(cgroups),
    tools: Object.fromEntries(toolNames.map((name, i) => [name, tools[i]!])) as HostInfo['tools'],
  };
}
