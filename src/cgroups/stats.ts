/**
 * Reading a container's cgroup v2 files into numbers: memory.current,
 * memory.stat, memory.events, cpu.stat, pids.current, io.stat. A file that
 * is missing (its controller is not enabled for the cgroup) leaves its part
 * of the stats undefined rather than failing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupStats {
  memory?: {
    /** memory.current, bytes */
    usage: number;
    /** memory.max, bytes; null: no limit */
    limit: number | null;
    swapUsage?: number;
    /** memory.stat: anon, file, kernel, ... */
    stat: Record<string, number>;
    /** memory.events: low, high, max, oom, oom_kill */
    events: Record<string, number>;
  };
  cpu?: {
    usageUsec: number;
    userUsec: number;
    systemUsec: number;
    /** with a cpu.max quota */
    periods?: number;
    throttledPeriods?: number;
    throttledUsec?: number;
  };
  pids?: { current: number; limit: number | null };
  /** io.stat summed over devices */
  io?: { readBytes: number; writeBytes: number; reads: number; writes: number };
}

/** "key value" lines (memory.stat, memory.events, cpu.stat) -> numbers. */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) out[key] = Number(value);
  }
  return out;
}

/** "max" -> null, else the number. */
export function parseLimit(text: string): number | null {
  const value = text.trim();
  return value === 'max' ? null : Number(value);
}

/** io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device, summed. */
export function parseIoStat(text: string): NonNullable<CgroupStats['io']> {
  const total = { readBytes: 0, writeBytes: 0, reads: 0, writes: 0 };
  for (const line of text.split('\n')) {
    for (const field of line.trim().split(/\s+/).slice(1)) {
      const [key, value] = field.split('=');
      const n = Number(value);
      if (!Number.isFinite(n)) continue;
      if (key === 'rbytes') total.readBytes += n;
      else if (key === 'wbytes') total.writeBytes += n;
      else if (key === 'rios') total.reads += n;
      else if (key === 'wios') total.writes += n;
    }
  }
  return total;
}

function read(dir: string, file: string): string | undefined {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch {
    return undefined;
  }
}

export function readCgroupStats(dir: string): CgroupStats {
  const stats: CgroupStats = {};
  const memoryCurrent = read(dir, 'memory.current');
  if (memoryCurrent !== undefined) {
    const swap = read(dir, 'memory.swap.current');
    stats.memory = {
      usage: Number(memoryCurrent.trim()),
      limit: parseLimit(read(dir, 'memory.max') ?? 'max'),
      ...(swap !== undefined ? { swapUsage: Number(swap.trim()) } : {}),
      stat: parseKeyValues(read(dir, 'memory.stat') ?? ''),
      events: parseKeyValues(read(dir, 'memory.events') ?? ''),
    };
  }
  const cpuStat = read(dir, 'cpu.stat');
  if (cpuStat !== undefined) {
    const cpu = parseKeyValues(cpuStat);
    stats.cpu = {
      usageUsec: cpu.usage_usec ?? 0,
      userUsec: cpu.user_usec ?? 0,
      systemUsec: cpu.system_usec ?? 0,
      ...(cpu.nr_periods !== undefined ? { periods: cpu.nr_periods, throttledPeriods: cpu.nr_throttled ?? 0, throttledUsec: cpu.throttled_usec ?? 0 } : {}),
    };
  }
  const pids = read(dir, 'pids.current');
  if (pids !== undefined) stats.pids = { current: Number(pids.trim()), limit: parseLimit(read(dir, 'pids.max') ?? 'max') };
  const io = read(dir, 'io.stat');
  if (io !== undefined) stats.io = parseIoStat(io);
  return stats;
}

/** memory.events' oom_kill count of a cgroup, or undefined when it cannot be read (gone, no memory controller). */
export function readOomKills(dir: string): number | undefined {
  const events = read(dir, 'memory.events');
  if (events === undefined) return undefined;
  return parseKeyValues(events).oom_kill;
}
