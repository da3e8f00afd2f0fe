/**
 * A container's cgroup over its life, for src/container: made at start
 * (before the executor creates any namespace), changed by `nook update`,
 * read by `nook stats`, removed when the container has exited or is removed.
 */
import { NookError } from '../lib/errors.js';
import type { ExecutorPlan } from '../runtime/plan.js';
import type { OciSpec } from '../runtime/spec.js';
import { cgroupManager, checkLimitsPossible, type ContainerCgroup } from './manager.js';
import { cgroupFiles, resourcesFromOci, type OciResources } from './resources.js';
import type { CgroupStats } from './stats.js';

export interface PreparedCgroup {
  /** plan.joinCgroup (cgroupfs) or plan.holdBeforeNamespaces (systemd), and plan.watchOom */
  applyTo(plan: ExecutorPlan): void;
  /** startExecutor's onSetup (systemd): places the held setup process */
  onSetup?: (setupPid: number) => Promise<void>;
  /** what the record keeps once the container runs */
  record(): ContainerCgroup;
  /** a start that failed: remove what was made */
  release(): Promise<void>;
}

export function specResources(spec: OciSpec): OciResources | undefined {
  return spec.linux?.resources as OciResources | undefined;
}

/** Makes the container's cgroup with the limits of its config.json; null without a cgroup manager. */
export async function prepareCgroup(id: string, cgroup: ContainerCgroup | undefined, spec: OciSpec, onTrace?: (line: string) => void): Promise<PreparedCgroup | null> {
  if (!cgroup || cgroup.manager === 'none') return null;
  const resources = resourcesFromOci(specResources(spec));
  checkLimitsPossible(resources, cgroup, `cgroup manager ${cgroup.manager}`);
  const manager = await cgroupManager(cgroup.manager);
  const placement = await manager.create(cgroup, id, resources);
  if (!placement) return null;
  const limits = cgroupFiles(resources).map(([file, value]) => `${file}=${value}`).join(' ') || 'no limits';
  return {
    applyTo(plan) {
      if (placement.joinCgroup) {
        plan.joinCgroup = placement.joinCgroup;
        onTrace?.(`cgroup: ${placement.path()} (cgroupfs; ${limits})`);
      }
      if (placement.placeSetup) plan.holdBeforeNamespaces = true;
      plan.watchOom = cgroup.controllers.includes('memory');
    },
    ...(placement.placeSetup
      ? {
          onSetup: async (pid: number) => {
            await placement.placeSetup!(pid);
            onTrace?.(`cgroup: ${placement.path()} (systemd scope, Delegate=yes; ${limits})`);
          },
        }
      : {}),
    record: () => placement.record(),
    release: async () => {
      await manager.destroy(placement.record()).catch(() => {});
    },
  };
}

/** For nook exec: plan.joinCgroup, or plan.holdBeforeNamespaces with startExecutor's onSetup. */
export async function joinRunningCgroup(cgroup: ContainerCgroup | undefined, plan: ExecutorPlan): Promise<((pid: number) => Promise<void>) | undefined> {
  if (!cgroup?.path || cgroup.manager === 'none') return undefined;
  const join = (await cgroupManager(cgroup.manager)).join(cgroup);
  if (join.joinCgroup) plan.joinCgroup = join.joinCgroup;
  if (join.placeSetup) plan.holdBeforeNamespaces = true;
  return join.placeSetup;
}

/** Removes a container's cgroup if it is still there (after its exit, at rm). */
export async function releaseCgroup(cgroup: ContainerCgroup | undefined): Promise<void> {
  if (!cgroup?.path || cgroup.manager === 'none') return;
  await (await cgroupManager(cgroup.manager)).destroy(cgroup);
}

export async function cgroupStats(cgroup: ContainerCgroup | undefined, name: string): Promise<CgroupStats> {
  if (!cgroup || cgroup.manager === 'none') throw new NookError(`container ${name} has no cgroup (cgroup manager "none"): no statistics`);
  return (await cgroupManager(cgroup.manager)).stats(cgroup);
}

/** Applies new limits to a running container's cgroup (checked against what is delegated first). */
export async function updateCgroup(cgroup: ContainerCgroup | undefined, oci: OciResources, name: string): Promise<void> {
  if (!cgroup || cgroup.manager === 'none') throw new NookError(`container ${name} has no cgroup (cgroup manager "none"): its limits cannot be changed`);
  const resources = resourcesFromOci(oci);
  checkLimitsPossible(resources, cgroup, `cgroup manager ${cgroup.manager}`);
  await (await cgroupManager(cgroup.manager)).update(cgroup, resources);
}
