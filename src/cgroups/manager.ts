/**
 * Cgroup managers, as crun's table: one interface, three implementations
 * (systemd, cgroupfs, none), chosen once when a container is created and
 * recorded with it, never tested for again with scattered `if (systemd)`.
 *
 * - systemd: each container gets a transient scope (nook-<id>.scope) of the
 *   user's systemd instance, with Delegate=yes, created over D-Bus with the
 *   setup process's pid (the executor holds it before any namespace exists).
 * - cgroupfs: nook makes the cgroup itself under a writable, delegated cgroup
 *   v2 directory (no systemd: e.g. inside a CI container) and the setup
 *   process joins it (plan.joinCgroup).
 * - none: cgroup v1, or nothing delegated: no cgroup, no limits.
 *
 * Either way the setup process is in the container's cgroup before it
 * creates the cgroup namespace, so the container sees its own subtree.
 */
import { NookError } from '../lib/errors.js';
import type { CgroupManagerName } from '../host/cgroup-manager.js';
import { hasLimits, requiredControllers, type Resources } from './resources.js';
import type { CgroupStats } from './stats.js';

export type { CgroupManagerName };

/** What a container's record keeps about its cgroup. */
export interface ContainerCgroup {
  manager: CgroupManagerName;
  /** the controllers limits may use (delegated ones), as found at create */
  controllers: string[];
  /** cgroupfs: the directory containers' cgroups are made in */
  parent?: string;
  /** systemd: the session bus ("unix:path=...") */
  bus?: string;
  /** systemd: the scope's name */
  unit?: string;
  /** the container's cgroup directory (/sys/fs/cgroup/...), once started */
  path?: string;
}

/** How the setup process gets into the new cgroup. */
export interface CgroupPlacement {
  /** cgroupfs: the cgroup.procs file for plan.joinCgroup */
  joinCgroup?: string;
  /** systemd: moves the held setup process (plan.holdBeforeNamespaces) into the cgroup */
  placeSetup?: (setupPid: number) => Promise<void>;
  /** the cgroup directory (known after placeSetup for systemd) */
  path(): string;
  /** what the record keeps (path set once placed) */
  record(): ContainerCgroup;
}

export interface CgroupManager {
  readonly name: CgroupManagerName;
  /** Makes the container's cgroup with these limits; the container joins it through the placement. */
  create(cgroup: ContainerCgroup, containerId: string, resources: Resources): Promise<CgroupPlacement | null>;
  /** Changes the limits of a running container. */
  update(cgroup: ContainerCgroup, resources: Resources): Promise<void>;
  stats(cgroup: ContainerCgroup): CgroupStats;
  /** Removes the cgroup (killing what is left in it); nothing when already gone. */
  destroy(cgroup: ContainerCgroup): Promise<void>;
  /** How another process (nook exec) gets into a running container's cgroup. */
  join(cgroup: ContainerCgroup): Pick<CgroupPlacement, 'joinCgroup' | 'placeSetup'>;
}

/** The fix for controllers systemd does not delegate, on one line. */
export const delegationFix =
  "sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload, then log in again";

/**
 * Refuses limits that would not hold: each flag whose controller is not
 * delegated is named, with the fix. Never a silent no-op.
 */
export function checkLimitsPossible(resources: Resources, cgroup: ContainerCgroup, why: string): void {
  if (!hasLimits(resources)) return;
  if (cgroup.manager === 'none') {
    const flags = [...requiredControllers(resources).values()].flat().join(', ');
    throw new NookError(`${flags}: resource limits are unavailable (${why})`);
  }
  const missing = [...requiredControllers(resources)].filter(([controller]) => !cgroup.controllers.includes(controller));
  if (missing.length === 0) return;
  const names = missing.map(([c]) => c);
  const flags = missing.flatMap(([, f]) => f);
  const delegated = cgroup.controllers.length ? cgroup.controllers.join(' ') : 'none';
  const fix =
    cgroup.manager === 'systemd'
      ? `delegate it to your user: ${delegationFix}`
      : `enable it for ${cgroup.parent ?? 'the parent cgroup'}: its owner must write "+${names.join(' +')}" to the cgroup.subtree_control of each cgroup above`;
  throw new NookError(
    `${flags.join(', ')} need${flags.length === 1 ? 's' : ''} the ${names.join(', ')} cgroup controller${names.length === 1 ? '' : 's'}, which ${cgroup.manager === 'systemd' ? 'systemd does not delegate to you' : 'is not available'} (delegated: ${delegated}); fix: ${fix}`,
  );
}

export async function cgroupManager(name: CgroupManagerName): Promise<CgroupManager> {
  switch (name) {
    case 'systemd':
      return new (await import('./systemd.js')).SystemdCgroupManager();
    case 'cgroupfs':
      return new (await import('./cgroupfs.js')).CgroupfsManager();
    case 'none':
      return noneManager;
  }
}

export const noneManager: CgroupManager = {
  name: 'none',
  async create() {
    return null;
  },
  async update() {
    throw new NookError('this container has no cgroup (cgroup manager "none"): its limits cannot be changed');
  },
  stats() {
    return {};
  },
  async destroy() {},
  join() {
    return {};
  },
};
