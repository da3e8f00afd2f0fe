/**
 * `nook exec`: a new process in a running container. The executor joins
 * every namespace of the container's PID 1 (user first), then applies the same
 * capabilities, no_new_privs and seccomp filter the container has.
 */
import { readFileSync } from 'node:fs';
import { NookError } from '../lib/errors.js';
import type { NamespacePlan, ExecutorPlan } from '../runtime/plan.js';
import { startExecutor } from '../runtime/executor.js';
import { rlimitNumber } from '../runtime/spec-to-plan.js';
import { toCapabilitySets, resolveCapabilities } from '../security/capabilities.js';
import { mergeEnv } from './spec-builder.js';
import { readSpec } from './start.js';
import type { ContainerStore, ContainerRecord } from './store.js';
import { resolveUser } from './users.js';

export interface ExecOptions {
  command: string[];
  env: string[];
  workdir?: string;
  user?: string;
  tty: boolean;
  interactive: boolean;
  privileged: boolean;
  trace?: (line: string) => void;
}

const NS_FILES: Record<string, NamespacePlan['type']> = { mount: 'mnt', uts: 'uts', ipc: 'ipc', network: 'net', cgroup: 'cgroup', pid: 'pid' };

export async function execInContainer(store: ContainerStore, record: ContainerRecord, options: ExecOptions): Promise<number> {
  const live = store.refreshStatus(record);
  if (live.status !== 'running' || !live.pid) throw new NookError(`container ${record.name} is not running`);
  if (options.command.length === 0) throw new NookError('exec needs a command to run');
  const spec = readSpec(store, live.id);
  const pid = live.pid;
  const process_ = spec.process!;

  const readFile = (path: string): string | null => {
    try {
      return readFileSync(`/proc/${pid}/root${path}`, 'utf8');
    } catch {
      return null;
    }
  };
  const user = options.user !== undefined ? resolveUser(options.user, readFile) : { uid: process_.user.uid, gid: process_.user.gid, additionalGids: process_.user.additionalGids ?? [], home: undefined };
  const capabilities = options.user !== undefined || options.privileged
    ? resolveCapabilities({ privileged: options.privileged, user: user.uid, add: [], drop: [] })
    : process_.capabilities;
  // Only what the container has: a container with the host's network has no net namespace of its own.
  const namespaces: NamespacePlan[] = (spec.linux?.namespaces ?? [])
    .filter((ns) => ns.type !== 'user' && NS_FILES[ns.type])
    .map((ns) => ({ type: NS_FILES[ns.type]!, path: `/proc/${pid}/ns/${NS_FILES[ns.type]}` }));
  let seccompFilter: string | null = null;
  if (spec.linux?.seccomp && !options.privileged) {
    const { compiledSeccompHex } = await import('../security/seccomp/cache.js');
    seccompFilter = await compiledSeccompHex(spec.linux.seccomp, store.paths.runRoot);
  }

  const plan: ExecutorPlan = {
    trace: options.trace !== undefined,
    user: { mode: 'join', path: `/proc/${pid}/ns/user` },
    namespaces,
    outerOps: [],
    innerOps: [],
    process: {
      args: options.command,
      env: mergeEnv(process_.env ?? [], options.tty ? ['TERM=xterm'] : [], options.env),
      cwd: options.workdir ?? process_.cwd,
      uid: user.uid,
      gid: user.gid,
      additionalGids: user.additionalGids,
      capabilities: capabilities ? toCapabilitySets(capabilities) : null,
      noNewPrivileges: process_.noNewPrivileges ?? true,
      seccompFilter,
      rlimits: (process_.rlimits ?? []).map((r) => ({ resource: rlimitNumber(r.type), soft: r.soft, hard: r.hard })),
      oomScoreAdj: null,
      searchPath: !options.command[0]!.includes('/'),
      // A terminal of the container's own devpts: opened by the executor after it has joined the mount namespace.
      terminal: options.tty,
      ...(options.tty ? { consoleSize: (await import('./terminal.js')).initialTerminalSize() } : {}),
    },
    monitor: { mode: 'foreground', dieWithParent: true, terminalStdin: options.tty && options.interactive },
  };

  // The process joins the container's cgroup too, so that its limits hold for it.
  const placeSetup = await (await import('../cgroups/container.js')).joinRunningCgroup(live.cgroup, plan);
  const executor = startExecutor(plan, {
    ...(placeSetup ? { onSetup: placeSetup } : {}),
    detached: false,
    stdio: [options.interactive || options.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'],
    ...(options.trace ? { onTrace: options.trace } : {}),
  });
  await executor.started;
  const forward = (signal: NodeJS.Signals) => executor.kill(signal);
  // SIGINT/SIGQUIT from the terminal reach the process directly (same process
  // group), so passing them on too would deliver them twice: Node only must not die of them.
  const ignored = (): void => {};
  const forwarded: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
  process.on('SIGINT', ignored);
  process.on('SIGQUIT', ignored);
  for (const signal of forwarded) process.on(signal, forward);
  try {
    const exit = await executor.exit;
    return exit.code;
  } finally {
    for (const signal of forwarded) process.off(signal, forward);
    process.off('SIGINT', ignored);
    process.off('SIGQUIT', ignored);
  }
}
