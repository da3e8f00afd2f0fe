/**
 * Choosing a container's cgroup manager once, at create: the host's choice
 * (src/host/cgroup-manager.ts, the same facts `nook info` and `nook doctor`
 * report), or the one asked with --cgroup-manager, or none with
 * --cgroups=disabled. The result is recorded with the container.
 */
import { basename, dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { NookError } from '../lib/errors.js';
import { decideCgroupManager, readCgroupFacts, systemdUserSessionReachable, type CgroupFacts, type CgroupManagerName } from '../host/cgroup-manager.js';
import { realHostView, type HostView } from '../host/view.js';
import type { ContainerCgroup } from './manager.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
/** The leaf the cgroupfs manager moves the processes of its parent cgroup into (see cgroupfs.ts). */
export const INIT_LEAF = 'nook-init';

export interface CgroupRequest {
  /** --cgroup-manager */
  manager?: string;
  /** --cgroups: enabled (default) or disabled */
  cgroups?: string;
  /** --cgroup-parent (cgroupfs): a cgroup path such as /ci/nook, under /sys/fs/cgroup */
  parent?: string;
  view?: HostView;
}

export interface CgroupSelection {
  cgroup: ContainerCgroup;
  /** why this manager, for messages */
  reason: string;
}

const MANAGERS: CgroupManagerName[] = ['systemd', 'cgroupfs', 'none'];

function words(text: string | undefined): string[] {
  return (text ?? '').split(/\s+/).filter(Boolean);
}

function readWords(path: string): string[] {
  try {
    return words(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}

/**
 * Where cgroupfs makes containers' cgroups: --cgroup-parent, else nook's own
 * cgroup (or its parent when nook already moved itself into nook-init).
 */
export function cgroupfsParent(facts: CgroupFacts, requested: string | undefined, root = CGROUP_ROOT): string | null {
  if (requested) return join(root, requested.startsWith('/') ? requested : `/${requested}`);
  if (!facts.ownDir) return null;
  return basename(facts.ownDir) === INIT_LEAF ? dirname(facts.ownDir) : facts.ownDir;
}

export async function selectCgroups(request: CgroupRequest = {}): Promise<CgroupSelection> {
  const cgroups = request.cgroups ?? 'enabled';
  if (cgroups !== 'enabled' && cgroups !== 'disabled') throw new NookError(`invalid --cgroups "${cgroups}": use enabled or disabled`);
  const wanted = request.manager;
  if (wanted !== undefined && !MANAGERS.includes(wanted as CgroupManagerName)) throw new NookError(`invalid --cgroup-manager "${wanted}": use ${MANAGERS.join(', ')}`);
  if (cgroups === 'disabled') return { cgroup: { manager: 'none', controllers: [] }, reason: '--cgroups=disabled: the container runs without a cgroup of its own' };
  if (wanted === 'none') return { cgroup: { manager: 'none', controllers: [] }, reason: '--cgroup-manager=none' };

  const facts = await readCgroupFacts(request.view ?? realHostView());
  const choice = decideCgroupManager(facts);
  const manager = (wanted as CgroupManagerName | undefined) ?? (request.parent ? 'cgroupfs' : choice.manager);

  if (manager === 'systemd') {
    if (facts.version !== 'v2') throw new NookError(`--cgroup-manager=systemd needs cgroup v2: ${choice.reason}`);
    if (!systemdUserSessionReachable(facts)) throw new NookError(`--cgroup-manager=systemd: the systemd user session does not answer (${facts.systemd.userManager?.message ?? (facts.systemd.busPath ? 'not asked' : 'no session bus socket')}); log in through a real session or run: sudo loginctl enable-linger $USER`);
    return {
      cgroup: { manager: 'systemd', controllers: facts.systemd.delegatedControllers ?? facts.ownControllers, bus: `unix:path=${facts.systemd.busPath}` },
      reason: wanted ? '--cgroup-manager=systemd' : choice.reason,
    };
  }
  if (manager === 'cgroupfs') {
    if (facts.version !== 'v2') throw new NookError(`the cgroupfs manager needs cgroup v2: ${choice.reason}`);
    const parent = cgroupfsParent(facts, request.parent);
    if (!parent) throw new NookError('the cgroupfs manager: cannot tell which cgroup this process is in (/proc/self/cgroup)');
    return {
      cgroup: { manager: 'cgroupfs', controllers: readWords(join(parent, 'cgroup.controllers')), parent },
      reason: wanted || request.parent ? `cgroupfs under ${parent}` : choice.reason,
    };
  }
  return { cgroup: { manager: 'none', controllers: [] }, reason: `${choice.reason}; fix: ${noneFix(facts)}` };
}

/** How a host without a usable cgroup manager gets one (nook doctor has the details). */
function noneFix(facts: CgroupFacts): string {
  if (facts.version === 'v1' || facts.version === 'v1-hybrid') return 'boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1 on the kernel command line), see nook doctor';
  if (facts.version === 'none') return 'mount cgroup2 at /sys/fs/cgroup';
  return 'run nook in a systemd user session (log in directly rather than with su, or: sudo loginctl enable-linger $USER) or in a cgroup delegated to you, see nook doctor';
}
