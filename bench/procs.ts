/**
 * Which processes a container start leaves behind, and how much memory they
 * hold: a snapshot of the measuring scope's processes before `run -d` and
 * after, the difference minus the container's own processes (its pid and
 * their descendants) is what the engine keeps per container (monitor,
 * conmon, slirp4netns, rootlessport, fuse-overlayfs...).
 *
 * The scope is the suite's own cgroup when it has one (a root run puts the
 * measuring user in a cgroup of its own, so that other work of the same user
 * on the machine is not counted), else every process of the user.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** the short name (comm) */
  name: string;
  /** command line, for the report */
  args: string;
  /** 'R', 'S', 'Z'... */
  state: string;
}

export interface ProcessMemory {
  pid: number;
  name: string;
  args: string;
  /** bytes */
  rss: number;
  /** bytes; undefined when smaps_rollup cannot be read */
  pss?: number;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function processInfo(pid: number): ProcessInfo | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const close = stat.lastIndexOf(')');
  const name = stat.slice(stat.indexOf('(') + 1, close);
  const rest = stat.slice(close + 2).split(' ');
  const cmdline = readText(`/proc/${pid}/cmdline`) ?? '';
  return { pid, ppid: Number(rest[1]), name, args: cmdline.split('\0').filter(Boolean).join(' '), state: rest[0] ?? '?' };
}

/** The processes to consider: those of a cgroup (its cgroup.procs, recursively), or every process of a uid. */
export function scopePids(scope: { cgroup?: string; uid: number }): number[] {
  if (scope.cgroup) return cgroupPids(scope.cgroup);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = readText(`/proc/${entry}/status`);
    const uid = status && /^Uid:\s+(\d+)/m.exec(status);
    if (uid && Number(uid[1]) === scope.uid) pids.push(Number(entry));
  }
  return pids;
}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (path: string) => {
    for (const line of (readText(`${path}/cgroup.procs`) ?? '').split('\n')) if (line) pids.push(Number(line));
    let children: string[] = [];
    try {
      children = readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return;
    }
    for (const child of children) walk(`${path}/${child}`);
  };
  walk(dir);
  return pids;
}

/** pid and every descendant of it among `all`. */
export function descendantsOf(pid: number, all: readonly ProcessInfo[]): Set<number> {
  const found = new Set<number>([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const proc of all) {
      if (!found.has(proc.pid) && found.has(proc.ppid)) {
        found.add(proc.pid);
        grew = true;
      }
    }
  }
  return found;
}

/** Rss and Pss from /proc/PID/smaps_rollup (Pss counts shared pages divided among their users). */
export function processMemory(info: ProcessInfo): ProcessMemory | undefined {
  const rollup = readText(`/proc/${info.pid}/smaps_rollup`);
  const kib = (text: string | undefined, field: string) => {
    const match = text && new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  let rss = kib(rollup, 'Rss');
  const pss = kib(rollup, 'Pss');
  if (rss === undefined) rss = kib(readText(`/proc/${info.pid}/status`), 'VmRSS');
  if (rss === undefined) return undefined;
  return { pid: info.pid, name: info.name, args: info.args, rss, ...(pss !== undefined ? { pss } : {}) };
}

export function snapshot(scope: { cgroup?: string; uid: number }): ProcessInfo[] {
  return scopePids(scope)
    .map(processInfo)
    .filter((p): p is ProcessInfo => p !== undefined && p.state !== 'Z');
}

/**
 * The processes in `after` that were not in `before`, minus the container's
 * own (containerPid and its descendants), with their memory.
 */
export function leftBehind(before: readonly ProcessInfo[], after: readonly ProcessInfo[], containerPid: number): { helpers: ProcessMemory[]; container: ProcessInfo[] } {
  const old = new Set(before.map((p) => p.pid));
  const own = descendantsOf(containerPid, after);
  const helpers: ProcessMemory[] = [];
  for (const proc of after) {
    if (old.has(proc.pid) || own.has(proc.pid)) continue;
    const memory = processMemory(proc);
    if (memory) helpers.push(memory);
  }
  return { helpers, container: after.filter((p) => own.has(p.pid)) };
}
