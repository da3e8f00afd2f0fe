/**
 * The cgroupfs manager: nook makes each container's cgroup itself, as
 * nook-<id> under a cgroup v2 directory it may write (its own cgroup, e.g. a
 * systemd service or scope with Delegate=yes, or the root of a CI
 * container's private cgroup namespace; or --cgroup-parent), writes the
 * limits into the cgroup's files, and the setup process joins it through
 * plan.joinCgroup.
 *
 * cgroup v2's "no internal processes" rule: controllers can be handed to the
 * children of a cgroup only while it holds no process. When the parent is
 * nook's own cgroup, nook first moves the processes in it (itself, the shell
 * that started it) into a leaf, nook-init, as podman does with "init"; later
 * runs find themselves in nook-init and use its parent.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError, errnoCode } from '../lib/errors.js';
import { wantedControllers } from '../host/cgroup-manager.js';
import type { CgroupManager, CgroupPlacement, ContainerCgroup } from './manager.js';
import { cgroupFiles, requiredControllers, type Resources } from './resources.js';
import { CGROUP_ROOT, INIT_LEAF } from './select.js';
import { readCgroupStats, type CgroupStats } from './stats.js';

export interface CgroupfsOptions {
  /** where cgroup v2 is mounted (tests: a temporary directory) */
  root?: string;
  /** this process's cgroup path ("/user.slice/..."); default: from /proc/self/cgroup */
  ownCgroup?: () => string | null;
  /** how long to wait for a cgroup to empty after cgroup.kill */
  killTimeoutMs?: number;
  /** rmdir (tests: a fake cgroup directory holds real files, which the kernel's do not count as) */
  removeDirectory?: (path: string) => void;
}

function words(text: string): string[] {
  return text.split(/\s+/).filter(Boolean).map((w) => w.replace(/^\+/, ''));
}

function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

function ownCgroupFromProc(): string | null {
  try {
    const line = readText('/proc/self/cgroup').split('\n').find((l) => l.startsWith('0::'));
    return line ? line.slice(3).trim() : null;
  } catch {
    return null;
  }
}

type FileWriter = (path: string, data: string) => void;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class CgroupfsManager implements CgroupManager {
  readonly name = 'cgroupfs' as const;
  private readonly root: string;
  private readonly ownCgroup: () => string | null;
  private readonly killTimeoutMs: number;
  private readonly removeDirectory: (path: string) => void;

  constructor(options: CgroupfsOptions = {}) {
    this.root = options.root ?? CGROUP_ROOT;
    this.ownCgroup = options.ownCgroup ?? ownCgroupFromProc;
    this.killTimeoutMs = options.killTimeoutMs ?? 5000;
    this.removeDirectory = options.removeDirectory ?? ((path) => rmdirSync(path));
  }

  async create(cgroup: ContainerCgroup, containerId: string, resources: Resources): Promise<CgroupPlacement> {
    const parent = cgroup.parent;
    if (!parent) throw new NookError('cgroupfs manager: the container has no parent cgroup recorded');
    // Every usual controller the parent can give, so that stats and later updates work too.
    const available = words(this.readOr(join(parent, 'cgroup.controllers'), ''));
    const enable = wantedControllers.filter((c) => available.includes(c));
    const needed = [...requiredControllers(resources).keys()];
    const unavailable = needed.filter((c) => !available.includes(c));
    if (unavailable.length) throw new NookError(`the ${unavailable.join(', ')} cgroup controller${unavailable.length > 1 ? 's are' : ' is'} not available in ${parent} (cgroup.controllers: ${available.join(' ') || 'none'})`);
    this.enableControllers(parent, enable);

    const dir = join(parent, `nook-${containerId}`);
    if (existsSync(dir)) await this.removeDir(dir); // left over from an earlier run of this container
    try {
      mkdirSync(dir);
    } catch (error) {
      throw new NookError(`cannot create the cgroup ${dir}: ${(error as Error).message}`, { cause: error });
    }
    try {
      this.writeLimits(dir, resources);
    } catch (error) {
      await this.removeDir(dir).catch(() => {});
      throw error;
    }
    const record: ContainerCgroup = { ...cgroup, path: dir };
    return { joinCgroup: join(dir, 'cgroup.procs'), path: () => dir, record: () => record };
  }

  async update(cgroup: ContainerCgroup, resources: Resources): Promise<void> {
    if (!cgroup.path || !existsSync(cgroup.path)) throw new NookError('the container has no cgroup (is it running?)');
    this.writeLimits(cgroup.path, resources);
  }

  stats(cgroup: ContainerCgroup): CgroupStats {
    return cgroup.path ? readCgroupStats(cgroup.path) : {};
  }

  async destroy(cgroup: ContainerCgroup): Promise<void> {
    if (cgroup.path) await this.removeDir(cgroup.path);
  }

  join(cgroup: ContainerCgroup): { joinCgroup?: string } {
    return cgroup.path ? { joinCgroup: join(cgroup.path, 'cgroup.procs') } : {};
  }

  private readOr(path: string, fallback: string): string {
    try {
      return readText(path);
    } catch {
      return fallback;
    }
  }

  /**
   * +controller in the parent's cgroup.subtree_control, moving its processes
   * out first when it is nook's own cgroup. `write` stands for the kernel in tests.
   */
  private enableControllers(parent: string, controllers: string[], write: FileWriter = writeFileSync): void {
    const subtree = join(parent, 'cgroup.subtree_control');
    const missing = () => controllers.filter((c) => !words(this.readOr(subtree, '')).includes(c));
    if (missing().length === 0) return;
    const enable = () => write(subtree, missing().map((c) => `+${c}`).join(' '));
    try {
      enable();
      return;
    } catch (error) {
      if (errnoCode(error) !== 'EBUSY') throw new NookError(`cannot enable the ${missing().join(', ')} controllers in ${subtree}: ${(error as Error).message}`, { cause: error });
    }
    const own = this.ownCgroup();
    if (own === null || join(this.root, own) !== parent) {
      throw new NookError(`cannot enable cgroup controllers in ${parent}: it holds processes (cgroup v2 gives controllers only to the children of a cgroup without processes); move them into a child cgroup, or give another --cgroup-parent`);
    }
    this.moveProcessesToLeaf(parent, write);
    try {
      enable();
    } catch (error) {
      throw new NookError(`cannot enable the ${missing().join(', ')} controllers in ${subtree}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Moves every process of `dir` into dir/nook-init, until none is left (they may fork meanwhile). */
  private moveProcessesToLeaf(dir: string, write: FileWriter): void {
    const leaf = join(dir, INIT_LEAF);
    mkdirSync(leaf, { recursive: true });
    for (let round = 0; round < 20; round++) {
      const pids = words(this.readOr(join(dir, 'cgroup.procs'), ''));
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          write(join(leaf, 'cgroup.procs'), pid);
        } catch (error) {
          if (errnoCode(error) === 'ESRCH') continue;
          throw new NookError(`cannot move process ${pid} out of ${dir} into ${leaf} (to hand cgroup controllers to containers): ${(error as Error).message}`, { cause: error });
        }
      }
    }
    throw new NookError(`the processes of ${dir} keep coming back: cannot hand cgroup controllers to containers`);
  }

  private writeLimits(dir: string, resources: Resources): void {
    for (const [file, value] of cgroupFiles(resources)) {
      try {
        writeFileSync(join(dir, file), value);
      } catch (error) {
        // Without swap accounting the kernel has no memory.swap.max: there is no swap to limit.
        if (file === 'memory.swap.max' && errnoCode(error) === 'ENOENT') continue;
        throw new NookError(`cannot set ${file} to "${value}" in ${dir}: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  /** Kills what is left in the cgroup, then removes it (and nothing when it is gone). */
  private async removeDir(dir: string): Promise<void> {
    const populated = () => this.readOr(join(dir, 'cgroup.procs'), '').trim() !== '';
    if (!existsSync(dir)) return;
    if (populated()) {
      const kill = join(dir, 'cgroup.kill');
      if (existsSync(kill)) writeFileSync(kill, '1');
      else for (const pid of words(this.readOr(join(dir, 'cgroup.procs'), ''))) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      const deadline = Date.now() + this.killTimeoutMs;
      while (populated() && Date.now() < deadline) await sleep(10);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.removeDirectory(dir);
        return;
      } catch (error) {
        const code = errnoCode(error);
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY' || attempt >= 50) throw new NookError(`cannot remove the cgroup ${dir}: ${(error as Error).message}`, { cause: error });
        await sleep(20);
      }
    }
  }
}
