/**
 * A rootless container's id mapping: which host ids the ids inside its user
 * namespace stand for.
 *
 * Default (as podman): container 0 is the user, 1..N are the user's
 * subordinate ids, in /etc/subuid order. With `keepId` the user keeps their
 * own number inside: 0..uid-1 are subordinate ids, uid is the user, uid+1..
 * the rest of the subordinate ids. Without subordinate ids there is a single
 * mapping (the user's own id) and setgroups must be denied: a warning says
 * what is lost.
 *
 * Multi-range maps need the setuid helpers newuidmap/newgidmap (the kernel
 * only lets a privileged writer map ids other than one's own).
 */
import type { IdMapEntry, UserNamespacePlan } from '../runtime/plan.js';
import { findProgram } from '../lib/programs.js';
import { currentUser, readSubordinateIds, type SubidRange, type SubidSources, type UserIdentity } from './subids.js';

export interface IdMapping {
  uidMap: IdMapEntry[];
  gidMap: IdMapEntry[];
  /** newuidmap/newgidmap, or null where the map is written directly (only the user's own id, or real root). */
  uidHelper: string | null;
  gidHelper: string | null;
  setgroups: 'allow' | 'deny';
  /** What the user's own uid/gid are inside: 0, or their own numbers with keepId. */
  containerUid: number;
  containerGid: number;
  /** Ids usable inside (the size of the maps). */
  uidCount: number;
  gidCount: number;
  /** One line each, for the user: what does not work with this mapping and why. */
  warnings: string[];
}

export interface IdMappingOptions extends SubidSources {
  keepId?: boolean;
  /** newuidmap/newgidmap, or null for "not installed" (tests); default: looked up in PATH and /usr/sbin. */
  newuidmapPath?: string | null;
  newgidmapPath?: string | null;
}

interface KindInput {
  kind: 'uid' | 'gid';
  own: number;
  ranges: SubidRange[];
  helper: string | null;
  file: string;
}

interface KindResult {
  map: IdMapEntry[];
  helper: string | null;
  inside: number;
  warning: string | null;
}

const LOST = 'files owned by other ids and chown to them will fail';

/** Hands out subordinate ids in order, splitting entries where a range ends. */
function allocate(ranges: SubidRange[]) {
  let index = 0;
  let used = 0;
  return {
    remaining(): number {
      return ranges.slice(index).reduce((sum, r) => sum + r.count, 0) - used;
    },
    take(insideStart: number, count: number): IdMapEntry[] {
      const entries: IdMapEntry[] = [];
      let inside = insideStart;
      while (count > 0 && index < ranges.length) {
        const range = ranges[index]!;
        const n = Math.min(count, range.count - used);
        entries.push({ inside, outside: range.start + used, count: n });
        inside += n;
        count -= n;
        used += n;
        if (used === range.count) {
          index++;
          used = 0;
        }
      }
      return entries;
    },
  };
}

function mapKind(input: KindInput, user: UserIdentity, keepId: boolean): KindResult {
  const ownInside = keepId ? input.own : 0;
  const single: IdMapEntry[] = [{ inside: ownInside, outside: input.own, count: 1 }];
  const who = user.name ?? String(user.uid);
  if (input.ranges.length === 0) {
    return {
      map: single,
      helper: null,
      inside: ownInside,
      warning: `no subordinate ${input.kind}s for ${who} in ${input.file}: running with a single id mapping; ${LOST}`,
    };
  }
  const helperName = input.kind === 'uid' ? 'newuidmap' : 'newgidmap';
  if (!input.helper) {
    return {
      map: single,
      helper: null,
      inside: ownInside,
      warning: `${helperName} is not installed (package uidmap or shadow-utils): running with a single id mapping; ${LOST}`,
    };
  }
  const subs = allocate(input.ranges);
  const map: IdMapEntry[] = [];
  if (keepId) {
    map.push(...subs.take(0, Math.min(input.own, subs.remaining())));
    map.push({ inside: input.own, outside: input.own, count: 1 });
    map.push(...subs.take(input.own + 1, subs.remaining()));
  } else {
    map.push({ inside: 0, outside: input.own, count: 1 });
    map.push(...subs.take(1, subs.remaining()));
  }
  return { map, helper: input.helper, inside: ownInside, warning: null };
}

/** Pure: the mapping from what is known of the user and the host. */
export function buildIdMapping(
  user: UserIdentity,
  subids: { uids: SubidRange[]; gids: SubidRange[] },
  helpers: { newuidmap: string | null; newgidmap: string | null },
  options: { keepId?: boolean; subuidPath?: string; subgidPath?: string } = {},
): IdMapping {
  const keepId = options.keepId ?? false;
  if (user.uid === 0) {
    // Real root may write any map directly; nothing to borrow from /etc/subuid.
    const full: IdMapEntry[] = [{ inside: 0, outside: 0, count: 0xffffffff }];
    return {
      uidMap: full,
      gidMap: full,
      uidHelper: null,
      gidHelper: null,
      setgroups: 'allow',
      containerUid: 0,
      containerGid: 0,
      uidCount: 0xffffffff,
      gidCount: 0xffffffff,
      warnings: [],
    };
  }
  const uid = mapKind({ kind: 'uid', own: user.uid, ranges: subids.uids, helper: helpers.newuidmap, file: options.subuidPath ?? '/etc/subuid' }, user, keepId);
  const gid = mapKind({ kind: 'gid', own: user.gid, ranges: subids.gids, helper: helpers.newgidmap, file: options.subgidPath ?? '/etc/subgid' }, user, keepId);
  const count = (map: IdMapEntry[]) => map.reduce((sum, e) => sum + e.count, 0);
  return {
    uidMap: uid.map,
    gidMap: gid.map,
    uidHelper: uid.helper,
    gidHelper: gid.helper,
    // The kernel requires "deny" before an unprivileged process writes gid_map itself.
    setgroups: gid.helper ? 'allow' : 'deny',
    containerUid: uid.inside,
    containerGid: gid.inside,
    uidCount: count(uid.map),
    gidCount: count(gid.map),
    warnings: combineWarnings(uid.warning, gid.warning, user, options),
  };
}

/** The same cause for uids and gids is said once. */
function combineWarnings(uid: string | null, gid: string | null, user: UserIdentity, options: { subuidPath?: string; subgidPath?: string }): string[] {
  if (uid?.startsWith('no subordinate') && gid?.startsWith('no subordinate')) {
    const files = `${options.subuidPath ?? '/etc/subuid'} and ${options.subgidPath ?? '/etc/subgid'}`;
    return [`no subordinate ids for ${user.name ?? user.uid} in ${files}: running with a single id mapping; ${LOST}`];
  }
  if (uid && gid && uid.includes('not installed') && gid.includes('not installed')) {
    return [`newuidmap and newgidmap are not installed (package uidmap or shadow-utils): running with a single id mapping; ${LOST}`];
  }
  return [uid, gid].filter((w): w is string => w !== null);
}

/** The current user's mapping, reading /etc/subuid and /etc/subgid (or getsubids). */
export async function computeIdMapping(user: UserIdentity = currentUser(), options: IdMappingOptions = {}): Promise<IdMapping> {
  const subids = user.uid === 0 ? { uids: [], gids: [] } : await readSubordinateIds(user, options);
  const helpers = {
    newuidmap: options.newuidmapPath === undefined ? findProgram('newuidmap') : options.newuidmapPath,
    newgidmap: options.newgidmapPath === undefined ? findProgram('newgidmap') : options.newgidmapPath,
  };
  return buildIdMapping(user, subids, helpers, options);
}

/** The plan's user namespace part for a new namespace with this mapping. */
export function newUserNamespacePlan(mapping: IdMapping): UserNamespacePlan {
  return {
    mode: 'new',
    uidMap: mapping.uidMap,
    gidMap: mapping.gidMap,
    uidHelper: mapping.uidHelper,
    gidHelper: mapping.gidHelper,
    setgroups: mapping.setgroups,
  };
}

/** The host id that a container id stands for, or null when it is not mapped. */
export function hostIdFor(map: IdMapEntry[], inside: number): number | null {
  for (const e of map) {
    if (inside >= e.inside && inside < e.inside + e.count) return e.outside + (inside - e.inside);
  }
  return null;
}
