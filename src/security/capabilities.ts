/**
 * Linux capabilities: the name table, podman's default set, and the rules
 * that turn --cap-add/--cap-drop/--privileged/--user into the OCI spec's
 * process.capabilities, then into the executor plan's bit masks.
 *
 * In a rootless container every capability is relative to the container's
 * user namespace: CAP_SYS_ADMIN lets the container mount a tmpfs in its own
 * mount namespace, never the host's. See docs/security.md.
 */
import { readFileSync } from 'node:fs';
import { NookError } from '../lib/errors.js';
import type { CapabilitySets } from '../runtime/plan.js';

/** Capability names without the CAP_ prefix; the index is the capability number (<linux/capability.h>). */
export const CAPABILITY_NAMES = [
  'CHOWN', // 0
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL', // 5
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', // 10
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER', // 15
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT', // 20
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME', // 25
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL', // 30
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM', // 35
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE', // 40
] as const;

/** "CAP_CHOWN" ... "CAP_CHECKPOINT_RESTORE" */
export type CapabilityName = `CAP_${(typeof CAPABILITY_NAMES)[number]}`;

/** The highest capability number nook knows (CAP_LAST_CAP of Linux 5.9+). */
export const LAST_KNOWN_CAP = CAPABILITY_NAMES.length - 1;

/**
 * nook's default set is podman's current one (containers.conf
 * `default_capabilities`, containers-common since 2022): Docker's set minus
 * AUDIT_WRITE, MKNOD and NET_RAW. Podman dropped those three because almost
 * no image needs them (ping works through the ping_group_range sysctl, not
 * raw sockets) and each is attack surface.
 */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/** Docker's default set, for reference and for `--cap-add` hints. */
export const DOCKER_DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  ...DEFAULT_CAPABILITIES,
  'CAP_AUDIT_WRITE',
  'CAP_MKNOD',
  'CAP_NET_RAW',
];

export const ALL_CAPABILITIES: readonly CapabilityName[] = CAPABILITY_NAMES.map((n) => `CAP_${n}` as CapabilityName);

/** The OCI runtime spec's process.capabilities. */
export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function unknownCapability(input: string): NookError {
  const bare = input.trim().toUpperCase().replace(/^CAP_/, '');
  const closest = CAPABILITY_NAMES.map((n) => ({ n, d: editDistance(bare, n) })).sort((x, y) => x.d - y.d)[0]!;
  const hint = closest.d <= 2 ? ` (did you mean ${closest.n}?)` : '';
  return new NookError(
    `unknown capability "${input}"${hint}; valid names, with or without CAP_: ${CAPABILITY_NAMES.join(', ')}, or ALL`,
  );
}

/** The number of a capability named with or without CAP_, in any case. */
export function capabilityNumber(name: string): number {
  const bare = name.trim().toUpperCase().replace(/^CAP_/, '');
  const index = (CAPABILITY_NAMES as readonly string[]).indexOf(bare);
  if (index === -1) throw unknownCapability(name);
  return index;
}

/** "chown", "CAP_CHOWN", "Cap_Chown" -> "CAP_CHOWN"; unknown names throw a NookError listing the valid ones. */
export function normalizeCapability(name: string): CapabilityName {
  return ALL_CAPABILITIES[capabilityNumber(name)]!;
}

/** Whether a name means "every capability" (ALL, in any case). */
export function isAll(name: string): boolean {
  return name.trim().toUpperCase() === 'ALL';
}

/**
 * Parses a list of capability names (as --cap-add/--cap-drop take them, also
 * comma-separated within one value) into normalized names; `ALL` is kept as "ALL".
 */
export function parseCapabilityList(values: readonly string[]): (CapabilityName | 'ALL')[] {
  const out: (CapabilityName | 'ALL')[] = [];
  for (const value of values) {
    for (const part of value.split(',')) {
      if (part.trim() === '') continue;
      const name = isAll(part) ? 'ALL' : normalizeCapability(part);
      if (!out.includes(name)) out.push(name);
    }
  }
  return out;
}

function sortByNumber(names: Iterable<CapabilityName>): CapabilityName[] {
  return [...new Set(names)].sort((a, b) => capabilityNumber(a) - capabilityNumber(b));
}

export interface CapabilityRequest {
  /** --cap-add values (names with or without CAP_, any case, ALL) */
  add?: readonly string[];
  /** --cap-drop values */
  drop?: readonly string[];
  /** --privileged: every capability the kernel knows */
  privileged?: boolean;
  /**
   * The user the container's process runs as (--user, or the image's User):
   * "", "root", "0" (optionally ":group") are root; anything else is not.
   * With --userns=keep-id the default user is the caller's, so pass that uid.
   */
  user?: string | number;
  /** The base set; default DEFAULT_CAPABILITIES (containers.conf default_capabilities). */
  defaults?: readonly string[];
  /** The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap); default LAST_KNOWN_CAP. */
  lastCap?: number;
}

function isRootUser(user: string | number | undefined): boolean {
  if (user === undefined) return true;
  const name = String(user).split(':')[0]!.trim();
  return name === '' || name === 'root' || name === '0';
}

/** podman's MergeCapabilities: base minus drops plus adds; ALL in drop keeps only the adds; ALL in add is everything. */
function mergeCapabilities(base: readonly string[], add: readonly string[], drop: readonly string[], everything: readonly CapabilityName[]): CapabilityName[] {
  const baseSet = parseCapabilityList(base).filter((c): c is CapabilityName => c !== 'ALL');
  const adds = parseCapabilityList(add);
  const drops = parseCapabilityList(drop);
  const addOnly = adds.filter((c): c is CapabilityName => c !== 'ALL');
  if (drops.includes('ALL')) {
    return adds.includes('ALL') ? [...everything] : addOnly;
  }
  if (adds.includes('ALL')) {
    return everything.filter((c) => !drops.includes(c));
  }
  for (const c of addOnly) {
    if (drops.includes(c)) throw new NookError(`capability ${c} cannot be both added and dropped`);
  }
  return [...baseSet.filter((c) => !drops.includes(c)), ...addOnly];
}

/**
 * The OCI process.capabilities for a container, by podman's rules
 * (pkg/specgen/generate/security_linux.go):
 *  - bounding: the defaults with --cap-add/--cap-drop applied (everything when privileged);
 *  - root in the container: effective = permitted = bounding, inheritable and ambient empty
 *    (execve as root recomputes the sets from bounding anyway);
 *  - another user: only the explicitly added capabilities are effective, permitted,
 *    inheritable and ambient (ambient is what survives execve for a non-root user),
 *    since a non-root process would lose the defaults at execve anyway.
 */
export function resolveCapabilities(request: CapabilityRequest = {}): Required<OciCapabilities> {
  const lastCap = Math.min(request.lastCap ?? LAST_KNOWN_CAP, LAST_KNOWN_CAP);
  const known = ALL_CAPABILITIES.slice(0, lastCap + 1);
  const withinKernel = (caps: readonly CapabilityName[]): CapabilityName[] => sortByNumber(caps.filter((c) => capabilityNumber(c) <= lastCap));

  // Parse (and so validate) everything first, so a typo fails even where it would not matter.
  const add = request.add ?? [];
  const drop = request.drop ?? [];
  parseCapabilityList(add);
  parseCapabilityList(drop);

  const bounding = request.privileged
    ? [...known]
    : withinKernel(mergeCapabilities(request.defaults ?? DEFAULT_CAPABILITIES, add, drop, known));

  if (isRootUser(request.user)) {
    return { bounding, effective: [...bounding], permitted: [...bounding], inheritable: [], ambient: [] };
  }
  const added = parseCapabilityList(add);
  const userCaps = added.includes('ALL')
    ? [...bounding]
    : withinKernel(added.filter((c): c is CapabilityName => c !== 'ALL')).filter((c) => bounding.includes(c));
  return { bounding, effective: [...userCaps], permitted: [...userCaps], inheritable: [...userCaps], ambient: [...userCaps] };
}

/** A set of capability names as the bit mask the plan carries: decimal string, bit N = capability N. */
export function capabilityMask(names: readonly string[] | undefined): string {
  let mask = 0n;
  for (const name of names ?? []) mask |= 1n << BigInt(capabilityNumber(name));
  return mask.toString(10);
}

/** The inverse of capabilityMask (for --trace, inspect, and tests). */
export function capabilitiesFromMask(mask: string | bigint): CapabilityName[] {
  const value = typeof mask === 'bigint' ? mask : BigInt(mask);
  return ALL_CAPABILITIES.filter((_, i) => (value >> BigInt(i)) & 1n);
}

/** OCI process.capabilities -> the executor plan's CapabilitySets. */
export function toCapabilitySets(caps: OciCapabilities): CapabilitySets {
  return {
    bounding: capabilityMask(caps.bounding),
    effective: capabilityMask(caps.effective),
    permitted: capabilityMask(caps.permitted),
    inheritable: capabilityMask(caps.inheritable),
    ambient: capabilityMask(caps.ambient),
  };
}

/** /proc/sys/kernel/cap_last_cap, or LAST_KNOWN_CAP where it cannot be read. */
export function readHostLastCap(path = '/proc/sys/kernel/cap_last_cap'): number {
  try {
    const value = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(value) && value >= 0 ? value : LAST_KNOWN_CAP;
  } catch {
    return LAST_KNOWN_CAP;
  }
}
