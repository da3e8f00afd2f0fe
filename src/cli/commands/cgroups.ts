/**
 * stats and update: a running container's resource use, read from its
 * cgroup, and changes to its limits while it runs (podman's flags).
 */
import type { Command } from 'commander';
import { NookError } from '../../lib/errors.js';
import { printJson, printTable, type GlobalOptions } from '../output.js';
import type { ContainerRecord, ContainerStore } from '../../container/store.js';
import type { CgroupStats } from '../../cgroups/stats.js';

async function openStore(cmd: Command): Promise<ContainerStore> {
  const globals = cmd.optsWithGlobals<GlobalOptions>();
  const [{ ContainerStore }, { resolvePaths }] = await Promise.all([import('../../container/store.js'), import('../../lib/paths.js')]);
  return new ContainerStore(resolvePaths(globals));
}

/** One container's numbers, as `nook stats --format json` prints them. */
export interface StatsEntry {
  id: string;
  name: string;
  /** CPU use over the last interval (since start for the first sample), 100 = one CPU */
  cpuPercent: number;
  cpuUsageUsec: number;
  cpuPeriods: number | null;
  cpuThrottledPeriods: number | null;
  cpuThrottledUsec: number | null;
  memoryUsage: number | null;
  memoryLimit: number | null;
  memoryPercent: number | null;
  oomKills: number | null;
  pids: number | null;
  pidsLimit: number | null;
  blockRead: number | null;
  blockWrite: number | null;
}

function entry(record: ContainerRecord, stats: CgroupStats, cpuPercent: number): StatsEntry {
  const memory = stats.memory;
  return {
    id: record.id,
    name: record.name,
    cpuPercent,
    cpuUsageUsec: stats.cpu?.usageUsec ?? 0,
    cpuPeriods: stats.cpu?.periods ?? null,
    cpuThrottledPeriods: stats.cpu?.throttledPeriods ?? null,
    cpuThrottledUsec: stats.cpu?.throttledUsec ?? null,
    memoryUsage: memory?.usage ?? null,
    memoryLimit: memory?.limit ?? null,
    memoryPercent: memory && memory.limit ? Math.round((memory.usage / memory.limit) * 10000) / 100 : null,
    oomKills: memory?.events.oom_kill ?? null,
    pids: stats.pids?.current ?? null,
    pidsLimit: stats.pids?.limit ?? null,
    blockRead: stats.io?.readBytes ?? null,
    blockWrite: stats.io?.writeBytes ?? null,
  };
}

function bytes(n: number | null): string {
  if (n === null) return '--';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 || Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return `${text}${units[unit]}`;
}

function row(e: StatsEntry): string[] {
  return [
    e.id.slice(0, 12),
    e.name,
    `${e.cpuPercent.toFixed(2)}%`,
    `${bytes(e.memoryUsage)} / ${e.memoryLimit === null ? 'unlimited' : bytes(e.memoryLimit)}`,
    e.memoryPercent === null ? '--' : `${e.memoryPercent.toFixed(2)}%`,
    `${bytes(e.blockRead)} / ${bytes(e.blockWrite)}`,
    e.pids === null ? '--' : `${e.pids}${e.pidsLimit === null ? '' : ` / ${e.pidsLimit}`}`,
  ];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function register(program: Command): void {
  program
    .command('stats')
    .description('show the resource use of running containers, from their cgroups (memory.current, cpu.stat, pids.current, io.stat)')
    .argument('[containers...]', 'containers (default: all running ones)')
    .option('--no-stream', 'print one sample and exit')
    .option('--interval <seconds>', 'seconds between samples when streaming', '5')
    .option('--format <format>', 'json for scripts')
    .action(async (names: string[], flags: { stream: boolean; interval: string; format?: string }, cmd: Command) => {
      const store = await openStore(cmd);
      const { cgroupStats } = await import('../../cgroups/container.js');
      const interval = Number(flags.interval);
      if (!(interval > 0)) throw new NookError(`invalid --interval "${flags.interval}": expected seconds above 0`);
      const pick = (): ContainerRecord[] => {
        if (names.length === 0) return store.list().filter((c) => c.status === 'running');
        return names.map((name) => {
          const record = store.get(name);
          if (record.status !== 'running') throw new NookError(`container ${record.name} is not running`);
          return record;
        });
      };
      // CPU % over the last interval; for the first sample, since the container started.
      const previous = new Map<string, { usec: number; at: number }>();
      for (let first = true; ; first = false) {
        const now = Date.now();
        const entries: StatsEntry[] = [];
        for (const record of pick()) {
          const stats = await cgroupStats(record.cgroup, record.name);
          const usec = stats.cpu?.usageUsec ?? 0;
          const before = previous.get(record.id) ?? { usec: 0, at: record.startedAt ? Date.parse(record.startedAt) : now };
          const elapsedUsec = Math.max(1, (now - before.at) * 1000);
          previous.set(record.id, { usec, at: now });
          entries.push(entry(record, stats, Math.round(((usec - before.usec) / elapsedUsec) * 10000) / 100));
        }
        if (flags.format === 'json') printJson(entries);
        else {
          if (!first && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
          printTable(['ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'BLOCK I/O', 'PIDS'], entries.map(row));
        }
        if (!flags.stream) return;
        await sleep(interval * 1000);
      }
    });

  program
    .command('update')
    .description('change the resource limits of a container (running ones at once, others from their next start)')
    .argument('<containers...>')
    .option('-m, --memory <size>', 'memory limit, e.g. 512m')
    .option('--memory-swap <size>', 'memory plus swap limit, -1 for unlimited swap')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('--cpus <number>', 'number of CPUs, e.g. 0.5')
    .option('-c, --cpu-shares <shares>', 'relative CPU weight, 2..262144')
    .option('--cpu-weight <weight>', 'relative CPU weight, 1..10000')
    .option('--cpuset-cpus <list>', 'CPUs the container may run on, e.g. 0-1')
    .option('--pids-limit <n>', 'maximum number of processes, -1 for no limit')
    .option('--blkio-weight <weight>', 'relative block I/O weight, 10..1000')
    .action(async (names: string[], flags: import('../../cgroups/resources.js').ResourceFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const { updateContainerResources } = await import('../../cgroups/update.js');
      for (const name of names) {
        await updateContainerResources(store, store.get(name), flags);
        process.stdout.write(`${name}\n`);
      }
    });
}
