/**
 * Starting a created container: its config.json becomes an executor plan,
 * the executor builds the container, the network is attached while the
 * container's process is held before execve, and the record follows.
 */
import { closeSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../lib/errors.js';
import type { NookPaths } from '../lib/paths.js';
import { storageDriver } from '../rootfs/driver.js';
import type { MonitorPlan } from '../runtime/plan.js';
import type { OciSpec } from '../runtime/spec.js';
import { specToPlan } from '../runtime/spec-to-plan.js';
import { startExecutor, type ExecutorHandle } from '../runtime/executor.js';
import { toCapabilitySets } from '../security/capabilities.js';
import type { ContainerRecord, ContainerStore } from './store.js';
import { processStartTime } from '../lib/processes.js';
import { mark } from '../lib/timing.js';

export interface StartOptions {
  /** Stay attached: stdio inherited (or a pty), wait for the exit. */
  attach: boolean;
  trace: boolean;
  onTrace?: (line: string) => void;
  onWarn?: (line: string) => void;
  /** -t attached: the monitor relays the container's terminal to ours; `stdin` copies our input too (-i). */
  terminal?: { stdin: boolean };
  /** Foreground without -i: the container's stdin is /dev/null. */
  stdinClosed?: boolean;
}

export interface StartedContainer {
  record: ContainerRecord;
  executor: ExecutorHandle;
}

export function readSpec(store: ContainerStore, id: string): OciSpec {
  return JSON.parse(readFileSync(join(store.dataDir(id), 'config.json'), 'utf8')) as OciSpec;
}

export async function startContainer(record: ContainerRecord, paths: NookPaths, store: ContainerStore, options: StartOptions): Promise<StartedContainer> {
  if (record.status === 'running') throw new NookError(`container ${record.name} is already running`);
  const spec = readSpec(store, record.id);
  const dataDir = store.dataDir(record.id);
  const stateDir = store.stateDir(record.id);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  const [{ prepareNetwork }, seccompFilter, idHelpers] = await Promise.all([
    import('./network-setup.js'),
    compileSpecSeccomp(spec, paths.runRoot),
    import('./idmap-setup.js').then((m) => m.idMapHelpers(spec)),
  ]);
  const network = await prepareNetwork(record, store);
  mark('start: network prepared, seccomp compiled');

  const driver = storageDriver(record.storageDriver);
  options.onTrace?.(`storage: ${driver.name}, ${record.lowerDirs.length} image layer(s) below a per-container upper layer`);
  const rootfsOps = driver.mountOps(
    { lowerDirs: record.lowerDirs, upperDir: join(dataDir, 'upper'), workDir: join(dataDir, 'work'), mergedDir: join(dataDir, 'merged') },
    {},
  );

  const monitor: MonitorPlan = options.attach
    ? { mode: 'foreground', dieWithParent: true, terminalStdin: options.terminal?.stdin ?? false }
    : {
        mode: 'detached',
        logPath: join(dataDir, 'ctr.log'),
        exitFile: store.exitFile(record.id),
        pidFile: join(stateDir, 'pid'),
        onExit: [process.execPath, cliPath(), '--root', paths.root, '--runroot', paths.runRoot, 'container', 'cleanup', record.id],
        dieWithParent: false,
      };

  const plan = specToPlan(spec, {
    rootfsOps,
    uidHelper: idHelpers.uidHelper,
    gidHelper: idHelpers.gidHelper,
    capabilities: spec.process?.capabilities ? toCapabilitySets(spec.process.capabilities) : null,
    seccompFilter,
    monitor,
    trace: options.trace,
    isDirectory: (path) => {
      try {
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
  });
  if (network.joinUserNamespace) plan.user = { mode: 'join', path: network.joinUserNamespace };
  if (plan.process.terminal) plan.process.consoleSize = (await import('./terminal.js')).initialTerminalSize();
  plan.hold = network.needsAttach;
  if (network.portForwards.length) plan.portForwards = network.portForwards;
  const cgroup = record.cgroup && record.cgroup.manager !== 'none' ? await (await import('../cgroups/container.js')).prepareCgroup(record.id, record.cgroup, spec, options.onTrace) : null;
  cgroup?.applyTo(plan);

  mark('start: plan built');
  const executor = startExecutor(plan, {
    detached: !options.attach,
    stdio: [options.stdinClosed && !options.terminal ? 'ignore' : 'inherit', 'inherit', 'inherit'],
    ...(options.onTrace ? { onTrace: options.onTrace } : {}),
    ...(network.lifelineFd !== undefined ? { extraFds: [network.lifelineFd] } : {}),
    ...(cgroup?.onSetup ? { onSetup: cgroup.onSetup } : {}),
  });
  // The monitor has its own copy now.
  if (network.lifelineFd !== undefined) closeFd(network.lifelineFd);

  try {
    let networkState: unknown;
    if (plan.hold) {
      const created = await executor.created;
      mark('start: executor created the container');
      networkState = await network.attach(created.pid, options.onWarn);
      options.onTrace?.(`network: ${describeNetwork(networkState)} attached to /proc/${created.pid}/ns/net`);
      for (const f of plan.portForwards ?? []) options.onTrace?.(`network: tcp ${f.hostIp}:${f.hostPort} -> ${f.containerIp}:${f.containerPort} forwarded by the executor (splice), not slirp4netns`);
      mark('start: network attached');
      executor.release();
    }
    const started = await executor.started;
    const running: ContainerRecord = {
      ...record,
      status: 'running',
      pid: started.pid,
      monitorPid: started.monitorPid,
      ...(processStartTime(started.monitorPid) ? { monitorStartTime: processStartTime(started.monitorPid)! } : {}),
      startedAt: new Date().toISOString(),
      network: { ...record.network, ...(networkState ? { state: networkState } : {}) },
      ...(cgroup ? { cgroup: cgroup.record() } : {}),
    };
    delete running.exitCode;
    delete running.finishedAt;
    delete running.oomKilled;
    store.save(running);
    return { record: running, executor };
  } catch (error) {
    executor.kill();
    await network.release();
    await cgroup?.release();
    throw error;
  }
}

async function compileSpecSeccomp(spec: OciSpec, runRoot: string): Promise<string | null> {
  const seccomp = spec.linux?.seccomp;
  if (!seccomp) return null;
  const { compiledSeccompHex } = await import('../security/seccomp/cache.js');
  return compiledSeccompHex(seccomp, runRoot);
}

export function cliPath(): string {
  return new URL('../cli/main.cjs', import.meta.url).pathname;
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function describeNetwork(state: unknown): string {
  const s = state as { mode?: string; helper?: { name: string; pid: number }; ports?: { hostPort: number; containerPort: number; protocol: string }[] } | undefined;
  if (!s) return 'none';
  const helper = s.helper ? ` (${s.helper.name} pid ${s.helper.pid})` : '';
  const ports = s.ports?.length ? `, ports ${s.ports.map((p) => `${p.hostPort}->${p.containerPort}/${p.protocol}`).join(' ')}` : '';
  return `${s.mode ?? 'unknown'}${helper}${ports}`;
}
