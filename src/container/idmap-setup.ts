/**
 * The container's id mappings, in OCI form for config.json, and at start the
 * programs that may write them (newuidmap/newgidmap) or none when the mapping
 * is the user's own id alone (written directly, setgroups denied).
 */
import { NookError } from '../lib/errors.js';
import { computeIdMapping } from '../idmap/mapping.js';
import { findProgram } from '../lib/programs.js';
import type { IdMapEntry } from '../runtime/plan.js';
import type { OciIdMapping, OciSpec } from '../runtime/spec.js';

export interface ContainerIdMappings {
  uidMappings: OciIdMapping[];
  gidMappings: OciIdMapping[];
  warning: string | undefined;
}

const toOci = (map: IdMapEntry[]): OciIdMapping[] => map.map((e) => ({ containerID: e.inside, hostID: e.outside, size: e.count }));

export async function resolveIdMappings(userns: string | undefined): Promise<ContainerIdMappings> {
  const mapping = await computeIdMapping(undefined, { keepId: userns === 'keep-id' });
  if (mapping.uidMap.length === 0) throw new NookError('no uid mapping could be computed for this user');
  return { uidMappings: toOci(mapping.uidMap), gidMappings: toOci(mapping.gidMap), warning: mapping.warnings.length ? mapping.warnings.join('; ') : undefined };
}

/** A map that names only the caller's own id can be written without the setuid helpers. */
function needsHelper(mappings: OciIdMapping[] | undefined, ownId: number): boolean {
  if (!mappings || mappings.length === 0) return false;
  return !(mappings.length === 1 && mappings[0]!.hostID === ownId && mappings[0]!.size === 1);
}

export function idMapHelpers(spec: OciSpec): { uidHelper: string | null; gidHelper: string | null } {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const wantUid = uid !== 0 && needsHelper(spec.linux?.uidMappings, uid);
  const wantGid = uid !== 0 && needsHelper(spec.linux?.gidMappings, gid);
  const uidHelper = wantUid ? findProgram('newuidmap') : null;
  const gidHelper = wantGid ? findProgram('newgidmap') : null;
  if (wantUid && !uidHelper) throw new NookError('the container maps subordinate uids but newuidmap is not installed (package uidmap)');
  if (wantGid && !gidHelper) throw new NookError('the container maps subordinate gids but newgidmap is not installed (package uidmap)');
  return { uidHelper, gidHelper };
}
