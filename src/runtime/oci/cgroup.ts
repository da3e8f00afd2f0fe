/**
 * linux.resources of a bundle through nook's cgroup managers (src/cgroups).
 * Where the host has none for this user (cgroup v1, nothing delegated), the
 * container runs without a cgroup and limits it asked for are ignored with a
 * warning, as podman does for rootless containers on cgroup v1.
 */
import { readFileSync } from 'node:fs';
import type { PreparedCgroup } from '../../cgroups/container.js';
import type { OciSpec } from '../spec.js';

export async function ociCgroup(id: string, spec: OciSpec, systemd: boolean, warn: (message: string) => void): Promise<PreparedCgroup | null> {
  const [{ selectCgroups }, { resourcesFromOci, hasLimits }] = await Promise.all([import('../../cgroups/select.js'), import('../../cgroups/resources.js')]);
  const asksLimits = (): boolean => {
    try {
      return hasLimits(resourcesFromOci(spec.linux?.resources as Parameters<typeof resourcesFromOci>[0]));
    } catch {
      return true;
    }
  };
  let selection;
  try {
    selection = await selectCgroups(systemd ? { manager: 'systemd' } : {});
  } catch (error) {
    warn(`${(error as Error).message}: the container runs without a cgroup${asksLimits() ? ', linux.resources ignored' : ''}`);
    return null;
  }
  if (selection.cgroup.manager === 'none') {
    if (asksLimits()) warn(`linux.resources ignored: no cgroup manager (${selection.reason})`);
    return null;
  }
  const { prepareCgroup } = await import('../../cgroups/container.js');
  return prepareCgroup(id, selection.cgroup, spec);
}

/** Removes the cgroup a container was given, if it is still there. */
export async function releaseOciCgroup(cgroup: unknown): Promise<void> {
  if (!cgroup) return;
  const { releaseCgroup } = await import('../../cgroups/container.js');
  await releaseCgroup(cgroup as Parameters<typeof releaseCgroup>[0]);
}

/** The processes of the container's cgroup, or null without one. */
export function cgroupProcesses(cgroup: unknown): number[] | null {
  const path = (cgroup as { path?: string } | undefined)?.path;
  if (!path) return null;
  try {
    return readFileSync(`${path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return null;
  }
}
