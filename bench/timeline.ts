/**
 * The timeline of one `nook run --rm --network none busybox true`, from the
 * kernel's scheduler events (`perf record -e sched:sched_process_exec,
 * sched_process_exit, sched_process_fork`), which cost the traced processes
 * next to nothing (unlike strace, whose ptrace stops also break the setuid
 * newuidmap): when Node starts, when it starts the executor, when the
 * container's command is exec'd and exits, when nook exits, and how long each
 * helper program lives.
 *
 * perf needs root here (perf_event_paranoid), so the root part of the suite
 * runs this before the measuring process and hands it the rows.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked, runCommand, type Command } from './command.js';
import type { Row } from './report.js';
import { summarize } from './stats.js';

export interface SchedEvent {
  /** seconds */
  time: number;
  pid: number;
  kind: 'exec' | 'exit' | 'fork';
  /** exec: the file; fork: the child's pid */
  filename?: string;
  child?: number;
}

/** `perf script` lines of sched:sched_process_{exec,exit,fork} events. */
export function parsePerfScript(text: string): SchedEvent[] {
  const events: SchedEvent[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*.+?\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+sched:sched_process_(exec|exit|fork):\s+(.*)$/.exec(line);
    if (!match) continue;
    const [, pid, time, kind, rest] = match;
    const event: SchedEvent = { time: Number(time), pid: Number(pid), kind: kind as SchedEvent['kind'] };
    if (kind === 'exec') event.filename = /filename=(\S+)/.exec(rest!)?.[1];
    if (kind === 'fork') {
      const child = /child_pid=(\d+)/.exec(rest!);
      if (child) event.child = Number(child[1]);
    }
    events.push(event);
  }
  return events;
}

export interface StartTimeline {
  /** Node's exec to the executor's exec: Node's start, module loading, the image store, the plan, seccomp... */
  beforeExecutor: number;
  /** the executor's exec to the container command's exec: namespaces, id maps, mounts, the network, the hold */
  executorToCommand: number;
  /** the command's own life */
  command: number;
  /** the command's exit to nook's exit: the monitor, cleanup, removal (--rm) */
  afterCommand: number;
  total: number;
  /** program name -> seconds from its exec to its exit (newuidmap, newgidmap, nsenter, ip...) */
  helpers: Record<string, number>;
}

/**
 * The phases of one run whose processes descend from `rootPid`; the
 * container's command is the exec of `commandFile` (e.g. /bin/true).
 */
export function startTimeline(events: readonly SchedEvent[], rootPid: number, commandFile: string): StartTimeline {
  const tree = new Set([rootPid]);
  for (const event of events) if (event.kind === 'fork' && tree.has(event.pid) && event.child) tree.add(event.child);
  const ours = events.filter((e) => tree.has(e.pid));
  const exec = (test: (file: string) => boolean) => ours.find((e) => e.kind === 'exec' && e.filename !== undefined && test(e.filename));
  const exitOf = (pid: number) => [...ours].reverse().find((e) => e.kind === 'exit' && e.pid === pid);
  const node = exec((f) => /\/node$/.test(f));
  const executor = exec((f) => /\/nook-exec$/.test(f));
  const command = exec((f) => f === commandFile);
  if (!node || !executor || !command) throw new Error(`incomplete timeline: node ${!!node}, nook-exec ${!!executor}, ${commandFile} ${!!command}`);
  const commandExit = exitOf(command.pid);
  const nodeExit = exitOf(node.pid);
  if (!commandExit || !nodeExit) throw new Error('incomplete timeline: no exit of the command or of node');
  const helpers: Record<string, number> = {};
  const seen = new Set<number>();
  for (const event of ours) {
    if (event.kind !== 'exec' || !event.filename || seen.has(event.pid)) continue;
    seen.add(event.pid); // a process that execs again (nsenter -> ip) is charged to its first program
    if (event.pid === node.pid || event === command || /\/nook-exec$/.test(event.filename) || event.time < node.time) continue;
    const end = ours.find((e) => e.kind === 'exit' && e.pid === event.pid && e.time >= event.time);
    const name = event.filename.split('/').pop()!;
    if (end) helpers[name] = (helpers[name] ?? 0) + (end.time - event.time);
  }
  return {
    beforeExecutor: executor.time - node.time,
    executorToCommand: command.time - executor.time,
    command: commandExit.time - command.time,
    afterCommand: nodeExit.time - commandExit.time,
    total: nodeExit.time - node.time,
    helpers,
  };
}

/** Rows for the profile group: the median phases of the starts, `label` saying which starts. */
export function timelineRows(timelines: readonly StartTimeline[], label: string): Row[] {
  const row = (name: string, values: number[]): Row => ({ group: 'profile', name, unit: 'seconds', nook: summarize(values) });
  const rows = [
    row(`timeline (perf sched events), ${label}: total`, timelines.map((t) => t.total)),
    row(`  ${label}: node exec -> nook-exec exec (Node start, JS)`, timelines.map((t) => t.beforeExecutor)),
    row(`  ${label}: nook-exec exec -> container exec (namespaces, mounts, network)`, timelines.map((t) => t.executorToCommand)),
    row(`  ${label}: container command (true)`, timelines.map((t) => t.command)),
    row(`  ${label}: container exit -> nook exit (monitor, cleanup, --rm)`, timelines.map((t) => t.afterCommand)),
  ];
  const names = [...new Set(timelines.flatMap((t) => Object.keys(t.helpers)))].sort();
  for (const name of names) rows.push(row(`    ${label}: helper ${name} (exec to exit)`, timelines.map((t) => t.helpers[name] ?? 0)));
  return rows;
}

/**
 * As root: `runs` timed starts of busybox as the user (`asUser` wraps a
 * command line), each recorded by perf system-wide and cut down to the
 * start's own process tree. Undefined (with the reason) when perf cannot.
 */
export async function recordStartTimelines(options: {
  dir: string;
  runs: number;
  nook: (args: string[]) => string[];
  asUser: (argv: string[]) => string[];
  busyboxArchive: string;
}): Promise<{ rows: Row[] } | { skipped: string }> {
  const probe = await runCommand({ file: 'perf', args: ['list', 'sched:sched_process_exec'] });
  if (probe.exitCode !== 0 || !probe.stdout.includes('sched_process_exec')) return { skipped: 'perf with the sched tracepoints is not available' };
  await mkdir(options.dir, { recursive: true });
  const user = (argv: string[]): Command => {
    const full = options.asUser(argv);
    return { file: full[0]!, args: full.slice(1) };
  };
  await runChecked(user(options.nook(['load', '-q', '-i', options.busyboxArchive])));
  const rows: Row[] = [];
  try {
    for (const [label, network] of [['--network none', ['--network', 'none']], ['default network', []]] as const) {
      const run = options.nook(['run', '--rm', ...network, 'localhost/busybox', 'true']);
      const timelines: StartTimeline[] = [];
      for (let i = -1; i < options.runs; i++) {
        const data = join(options.dir, 'perf.data');
        const pidFile = join(options.dir, 'pid');
        const workload = ['sh', '-c', 'echo $$ > "$0" && exec "$@"', pidFile, ...options.asUser(run)];
        await runChecked({
          file: 'perf',
          args: ['record', '-q', '-a', '-o', data, '-e', 'sched:sched_process_exec', '-e', 'sched:sched_process_exit', '-e', 'sched:sched_process_fork', '--', ...workload],
        });
        const script = await runChecked({ file: 'perf', args: ['script', '-i', data] }, { maxOutput: 64 << 20 });
        const rootPid = Number((await readFile(pidFile, 'utf8')).trim());
        if (i >= 0) timelines.push(startTimeline(parsePerfScript(script.stdout), rootPid, '/bin/true')); // the first run warms caches
      }
      rows.push(...timelineRows(timelines, label));
    }
  } finally {
    await runCommand(user(['unshare', '--map-root-user', '--map-auto', 'rm', '-rf', options.dir]));
    await rm(options.dir, { recursive: true, force: true });
  }
  return { rows };
}
