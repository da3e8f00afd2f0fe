/**
 * Resource limits: podman's flags -> OCI linux.resources (what config.json
 * keeps, and what the OCI runtime reads from others' bundles) -> the cgroup v2
 * files and systemd properties that enforce them.
 *
 * The conversions are the ones runc and crun use, so a config.json means the
 * same under nook as under them: cpu shares 2..262144 map linearly onto
 * cpu.weight 1..10000, blkio weight 10..1000 onto io.weight 1..10000, and
 * memory.swap in OCI is memory + swap, while memory.swap.max is swap alone.
 */
import { NookError } from '../lib/errors.js';

/** The limits of one container, in cgroup v2 terms (what gets written). Absent: not limited by nook. */
export interface Resources {
  /** memory.max, bytes */
  memoryMax?: number;
  /** memory.swap.max, bytes of swap alone; null: unlimited */
  memorySwapMax?: number | null;
  /** memory.low, bytes */
  memoryLow?: number;
  /** cpu.max: quota microseconds per period */
  cpuQuota?: number;
  cpuPeriod?: number;
  /** cpu.weight, 1..10000 (100 is the default) */
  cpuWeight?: number;
  /** cpuset.cpus, e.g. "0-1,3" */
  cpusetCpus?: string;
  /** pids.max; null: unlimited */
  pidsMax?: number | null;
  /** io.weight, 1..10000 */
  ioWeight?: number;
}

export type Controller = 'cpu' | 'cpuset' | 'io' | 'memory' | 'pids';

/** OCI runtime spec linux.resources (the part nook uses). */
export interface OciResources {
  memory?: { limit?: number; reservation?: number; swap?: number };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string };
  pids?: { limit: number };
  blockIO?: { weight?: number };
  /** cgroup v2 files written as they are (OCI 1.1) */
  unified?: Record<string, string>;
}

/** The flags as the user typed them (podman's names). */
export interface ResourceFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpuWeight?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  blkioWeight?: string;
}

/** Which flag asks for which controller: the names errors use. */
export const flagControllers: { flag: string; key: keyof Resources; controller: Controller }[] = [
  { flag: '--memory', key: 'memoryMax', controller: 'memory' },
  { flag: '--memory-swap', key: 'memorySwapMax', controller: 'memory' },
  { flag: '--memory-reservation', key: 'memoryLow', controller: 'memory' },
  { flag: '--cpus', key: 'cpuQuota', controller: 'cpu' },
  { flag: '--cpu-shares/--cpu-weight', key: 'cpuWeight', controller: 'cpu' },
  { flag: '--cpuset-cpus', key: 'cpusetCpus', controller: 'cpuset' },
  { flag: '--pids-limit', key: 'pidsMax', controller: 'pids' },
  { flag: '--blkio-weight', key: 'ioWeight', controller: 'io' },
];

export const DEFAULT_CPU_PERIOD = 100_000;
/** podman refuses less: the container's own processes need some memory to start. */
const MIN_MEMORY = 6 * 1024 * 1024;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** "512m", "1g", "1.5G", "100000" -> bytes, with binary units as podman (go-units RAMInBytes). */
export function parseBytes(value: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?) ?([kmgtpb]?)(?:i?b)?$/i.exec(value.trim());
  if (!match) throw new NookError(`invalid ${flag} "${value}": expected a size such as 512m or 2g`);
  const bytes = Math.floor(Number(match[1]) * UNITS[match[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new NookError(`invalid ${flag} "${value}": too large`);
  return bytes;
}

function parseInteger(value: string, flag: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(value.trim())) throw new NookError(`invalid ${flag} "${value}": expected a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw new NookError(`invalid ${flag} "${value}": must be between ${min} and ${max}`);
  return n;
}

/** "0-3,5" style lists, as cpuset.cpus takes them. */
export function parseCpuList(value: string, flag = '--cpuset-cpus'): string {
  const text = value.trim();
  const ok = text.split(',').every((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    return m !== null && (m[2] === undefined || Number(m[2]) >= Number(m[1]));
  });
  if (!ok) throw new NookError(`invalid ${flag} "${value}": expected CPU numbers and ranges such as 0-1,3`);
  return text;
}

/** cpu shares (cgroup v1, 2..262144) -> cpu.weight (1..10000), as runc and crun convert them. */
export function sharesToWeight(shares: number): number {
  if (shares <= 0) return 0;
  return Math.floor(1 + ((Math.max(2, Math.min(262144, shares)) - 2) * 9999) / 262142);
}

/** blkio weight (10..1000) -> io.weight (1..10000), as runc converts it. */
export function blkioToIoWeight(weight: number): number {
  if (weight <= 0) return 0;
  return Math.floor(1 + ((Math.max(10, Math.min(1000, weight)) - 10) * 9999) / 990);
}

/**
 * The flags -> OCI linux.resources (undefined when nothing is asked).
 * --memory-swap is memory plus swap, -1 for unlimited swap; unset with
 * --memory, the container may swap as much as its memory (podman's rule).
 */
export function parseResourceFlags(flags: ResourceFlags, options: { update?: boolean } = {}): OciResources | undefined {
  const out: OciResources = {};
  if (flags.memory !== undefined) {
    const limit = parseBytes(flags.memory, '--memory');
    if (limit < MIN_MEMORY) throw new NookError(`invalid --memory "${flags.memory}": the minimum is 6m`);
    out.memory = { limit };
  }
  if (flags.memorySwap !== undefined) {
    // An update may change the swap alone: it is checked against the memory limit once merged.
    if (!out.memory && !options.update) throw new NookError('--memory-swap needs --memory as well (it is memory plus swap)');
    const swap = flags.memorySwap.trim() === '-1' ? -1 : parseBytes(flags.memorySwap, '--memory-swap');
    out.memory = { ...out.memory, swap };
  } else if (out.memory && !options.update) {
    out.memory.swap = out.memory.limit! * 2;
  }
  if (flags.memoryReservation !== undefined) {
    out.memory = { ...out.memory, reservation: parseBytes(flags.memoryReservation, '--memory-reservation') };
  }
  if (flags.cpus !== undefined) {
    const cpus = Number(flags.cpus);
    if (!/^\d*\.?\d+$/.test(flags.cpus.trim()) || !(cpus > 0)) throw new NookError(`invalid --cpus "${flags.cpus}": expected a positive number such as 0.5 or 2`);
    // crun and runc need at least 1 ms per period.
    out.cpu = { ...out.cpu, period: DEFAULT_CPU_PERIOD, quota: Math.max(1000, Math.round(cpus * DEFAULT_CPU_PERIOD)) };
  }
  if (flags.cpuShares !== undefined) {
    if (flags.cpuWeight !== undefined) throw new NookError('give --cpu-shares or --cpu-weight, not both');
    out.cpu = { ...out.cpu, shares: parseInteger(flags.cpuShares, '--cpu-shares', 2, 262144) };
  }
  if (flags.cpuWeight !== undefined) {
    out.unified = { ...out.unified, 'cpu.weight': String(parseInteger(flags.cpuWeight, '--cpu-weight', 1, 10000)) };
  }
  if (flags.cpusetCpus !== undefined) out.cpu = { ...out.cpu, cpus: parseCpuList(flags.cpusetCpus) };
  if (flags.pidsLimit !== undefined) {
    const limit = parseInteger(flags.pidsLimit, '--pids-limit', -1, 2 ** 31);
    out.pids = { limit: limit <= 0 ? -1 : limit };
  }
  if (flags.blkioWeight !== undefined) {
    out.blockIO = { weight: parseInteger(flags.blkioWeight, '--blkio-weight', 10, 1000) };
  }
  if (Object.keys(out).length === 0) return undefined;
  if (!options.update) checkMemory(out);
  return out;
}

/** Memory limits that contradict each other. */
export function checkMemory(oci: OciResources): void {
  const { limit, swap, reservation } = oci.memory ?? {};
  if (swap !== undefined && swap !== -1 && swap !== 0) {
    if (limit === undefined || limit <= 0) throw new NookError('--memory-swap needs a memory limit (it is memory plus swap)');
    if (swap < limit) throw new NookError(`--memory-swap (${swap} bytes) is memory plus swap, so it must be at least --memory (${limit} bytes)`);
  }
  if (reservation !== undefined && limit !== undefined && limit > 0 && reservation > limit) throw new NookError('--memory-reservation must not be above --memory');
}

/**
 * Merges an update (`nook update`) into a container's OCI resources. A new
 * --memory without --memory-swap keeps unlimited swap unlimited, and otherwise
 * allows as much swap as memory again (podman's rule).
 */
export function mergeOciResources(base: OciResources | undefined, update: OciResources): OciResources {
  const merged: OciResources = { ...base };
  if (update.memory) {
    merged.memory = { ...base?.memory, ...update.memory };
    if (update.memory.limit !== undefined && update.memory.swap === undefined) merged.memory.swap = base?.memory?.swap === -1 ? -1 : update.memory.limit * 2;
  }
  if (update.cpu) merged.cpu = { ...base?.cpu, ...update.cpu };
  if (update.pids) merged.pids = update.pids;
  if (update.blockIO) merged.blockIO = { ...base?.blockIO, ...update.blockIO };
  if (update.unified) merged.unified = { ...base?.unified, ...update.unified };
  // The last of --cpu-shares and --cpu-weight wins.
  if (update.cpu?.shares !== undefined && merged.unified) {
    const { 'cpu.weight': _dropped, ...rest } = merged.unified;
    merged.unified = rest;
  }
  if (update.unified?.['cpu.weight'] !== undefined && merged.cpu?.shares !== undefined) {
    const { shares: _dropped, ...rest } = merged.cpu;
    merged.cpu = rest;
  }
  checkMemory(merged);
  return merged;
}

/** OCI linux.resources -> cgroup v2 values (as crun's cgroup v2 writer). */
export function resourcesFromOci(oci: OciResources | undefined): Resources {
  const r: Resources = {};
  if (!oci) return r;
  const { memory, cpu, pids, blockIO, unified } = oci;
  if (memory?.limit !== undefined && memory.limit > 0) r.memoryMax = memory.limit;
  if (memory?.swap !== undefined && memory.swap !== 0) {
    if (memory.swap < 0) r.memorySwapMax = null;
    else if (memory.limit !== undefined && memory.limit > 0) r.memorySwapMax = Math.max(0, memory.swap - memory.limit);
    else throw new NookError('linux.resources.memory.swap needs memory.limit (OCI swap is memory plus swap)');
  }
  if (memory?.reservation !== undefined && memory.reservation > 0) r.memoryLow = memory.reservation;
  if (cpu?.quota !== undefined && cpu.quota > 0) {
    r.cpuQuota = cpu.quota;
    r.cpuPeriod = cpu.period && cpu.period > 0 ? cpu.period : DEFAULT_CPU_PERIOD;
  }
  if (cpu?.shares !== undefined && cpu.shares > 0) r.cpuWeight = sharesToWeight(cpu.shares);
  if (cpu?.cpus) r.cpusetCpus = cpu.cpus;
  if (pids) r.pidsMax = pids.limit > 0 ? pids.limit : null;
  if (blockIO?.weight !== undefined && blockIO.weight > 0) r.ioWeight = blkioToIoWeight(blockIO.weight);
  for (const [file, value] of Object.entries(unified ?? {})) {
    if (file === 'cpu.weight') r.cpuWeight = Number(value);
    else if (file === 'io.weight') r.ioWeight = Number(value.replace(/^default\s+/, ''));
    else if (file === 'memory.max') r.memoryMax = Number(value);
    else if (file === 'pids.max') r.pidsMax = value === 'max' ? null : Number(value);
    else throw new NookError(`linux.resources.unified: ${file} is not supported by nook`);
  }
  return r;
}

export function hasLimits(r: Resources): boolean {
  return Object.values(r).some((v) => v !== undefined);
}

/** The controllers these limits need, each with the flags that asked for it. */
export function requiredControllers(r: Resources): Map<Controller, string[]> {
  const needed = new Map<Controller, string[]>();
  for (const { flag, key, controller } of flagControllers) {
    if (r[key] === undefined) continue;
    // --memory implies a swap limit (podman's default): name only what was typed.
    if (key === 'memorySwapMax' && r.memoryMax !== undefined) continue;
    needed.set(controller, [...(needed.get(controller) ?? []), flag]);
  }
  return needed;
}

/** cgroup v2 file -> value, in the order they are written. */
export function cgroupFiles(r: Resources): [string, string][] {
  const files: [string, string][] = [];
  if (r.cpusetCpus !== undefined) files.push(['cpuset.cpus', r.cpusetCpus]);
  if (r.memoryLow !== undefined) files.push(['memory.low', String(r.memoryLow)]);
  if (r.memoryMax !== undefined) files.push(['memory.max', String(r.memoryMax)]);
  if (r.memorySwapMax !== undefined) files.push(['memory.swap.max', r.memorySwapMax === null ? 'max' : String(r.memorySwapMax)]);
  if (r.cpuQuota !== undefined) files.push(['cpu.max', `${r.cpuQuota} ${r.cpuPeriod ?? DEFAULT_CPU_PERIOD}`]);
  if (r.cpuWeight !== undefined) files.push(['cpu.weight', String(r.cpuWeight)]);
  if (r.pidsMax !== undefined) files.push(['pids.max', r.pidsMax === null ? 'max' : String(r.pidsMax)]);
  if (r.ioWeight !== undefined) files.push(['io.weight', `default ${r.ioWeight}`]);
  return files;
}

/** A systemd unit property as busctl writes it: name, D-Bus signature, value(s). */
export interface SystemdProperty {
  name: string;
  signature: string;
  values: string[];
}

const UINT64_MAX = '18446744073709551615';

/** "0-2,5" -> AllowedCPUs's byte array (bit N = CPU N). */
export function cpuListToMask(list: string): number[] {
  const bytes: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let cpu = a; cpu <= (b ?? a); cpu++) {
      while (bytes.length <= cpu >> 3) bytes.push(0);
      bytes[cpu >> 3]! |= 1 << (cpu & 7);
    }
  }
  return bytes;
}

/** The same limits as systemd unit properties (MemoryMax=, CPUQuota=, TasksMax=...). */
export function systemdProperties(r: Resources): SystemdProperty[] {
  const props: SystemdProperty[] = [];
  const t = (name: string, value: number | null) => props.push({ name, signature: 't', values: [value === null ? UINT64_MAX : String(value)] });
  if (r.memoryMax !== undefined) t('MemoryMax', r.memoryMax);
  if (r.memorySwapMax !== undefined) t('MemorySwapMax', r.memorySwapMax);
  if (r.memoryLow !== undefined) t('MemoryLow', r.memoryLow);
  if (r.cpuQuota !== undefined) {
    const period = r.cpuPeriod ?? DEFAULT_CPU_PERIOD;
    // systemd takes the quota per second of wall time, and the period apart.
    t('CPUQuotaPerSecUSec', Math.round((r.cpuQuota * 1_000_000) / period));
    t('CPUQuotaPeriodUSec', period);
  }
  if (r.cpuWeight !== undefined) t('CPUWeight', r.cpuWeight);
  if (r.cpusetCpus !== undefined) {
    const mask = cpuListToMask(r.cpusetCpus);
    props.push({ name: 'AllowedCPUs', signature: 'ay', values: [String(mask.length), ...mask.map(String)] });
  }
  if (r.pidsMax !== undefined) t('TasksMax', r.pidsMax);
  if (r.ioWeight !== undefined) t('IOWeight', r.ioWeight);
  return props;
}
