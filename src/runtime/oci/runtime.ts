/**
 * nook-runtime: nook's low-level half behind the OCI runtime command line
 * (create, start, state, kill, delete, and runc's run, exec, ps, list), so
 * that podman (--runtime), conmon, containerd and CRI-O, and Slurm's oci.conf
 * can drive it as they drive runc or crun.
 *
 * A container is built by the same executor and the same specToPlan as `nook
 * run`. What the command line adds is its life across separate invocations:
 *
 *   create   the executor builds the container (namespaces, id maps, mounts,
 *            pivot_root, the process settings) and holds its process before
 *            execve, waiting for a byte in ROOT/ID/exec.fifo; the monitor and
 *            the setup process then exit ("handoff"), so the container is
 *            reparented to the caller's subreaper (conmon, containerd-shim)
 *            or to init, which reaps it and learns its exit status. stdio is
 *            create's own, unless --console-socket takes a terminal.
 *   start    writes the byte into the FIFO and removes it.
 *   run      create + start + wait in one process: there the monitor stays,
 *            relays a terminal to the caller's, and reports the exit status.
 *
 * Errors follow runc's messages ("container with given ID already exists",
 * "container ID does not exist", "container not running"...), so that the
 * engines that parse them behave as they do with runc.
 */
import { closeSync, constants as fsConstants, existsSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic.js';
import { NookError } from '../../lib/errors.js';
import { toCapabilitySets, normalizeCapability } from '../../security/capabilities.js';
import { startExecutor, type ExecutorHandle, type ExecutorOptions } from '../executor.js';
import type { ExecutorPlan, MonitorPlan } from '../plan.js';
import { rlimitNumber } from '../spec-to-plan.js';
import type { OciProcess, OciSpec } from '../spec.js';
import { cgroupProcesses, ociCgroup, releaseOciCgroup } from './cgroup.js';
import { joinPlanNamespaces, runHooks } from './hooks.js';
import { bundleSpec, compileSeccomp, ociPlan } from './plan.js';
import { processStartTime, RuntimeStore, type OciState, type RuntimeRecord, type RuntimeStatus } from './state.js';

export interface RuntimeOptions {
  /** --root: where the containers' state lives */
  root: string;
  /** --systemd-cgroup: ask for the systemd cgroup manager */
  systemdCgroup: boolean;
  /** warnings (poststart/poststop hooks, ignored resources): to the --log file or stderr */
  warn: (message: string) => void;
  /** executor steps (--debug) */
  trace?: (line: string) => void;
}

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
}

export interface RunOptions extends CreateOptions {
  detach: boolean;
  /** keep the container's state after it exits (runc run --keep) */
  keep: boolean;
}

export interface ExecOptions {
  /** --process: a JSON file with an OCI process object */
  processFile?: string;
  args: string[];
  tty: boolean;
  consoleSocket?: string;
  pidFile?: string;
  detach: boolean;
  cwd?: string;
  env: string[];
  /** uid[:gid] */
  user?: string;
  additionalGids: number[];
  noNewPrivs: boolean;
  /** capabilities added to every set */
  caps: string[];
}

const err = (message: string) => new NookError(message, { exitCode: 1 });

/** SIGKILL, KILL, kill, 9 -> 9 */
export function parseSignal(value: string | undefined): number {
  if (value === undefined || value === '') return osConstants.signals.SIGTERM;
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n < 1 || n > 64) throw err(`invalid signal: ${value}`);
    return n;
  }
  const name = value.toUpperCase().startsWith('SIG') ? value.toUpperCase() : `SIG${value.toUpperCase()}`;
  const n = (osConstants.signals as Record<string, number>)[name];
  if (n === undefined) throw err(`invalid signal: ${value}`);
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function readConfig(bundle: string): string {
  try {
    return readFileSync(resolve(bundle, 'config.json'), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw err(`open ${resolve(bundle, 'config.json')}: ${code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
  }
}

function writePidFile(path: string, pid: number): void {
  writeFileAtomic(resolve(path), String(pid));
}

function killQuietly(pid: number, signal: number): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function children(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = byParent.get(ppid) ?? [];
      list.push(Number(name));
      byParent.set(ppid, list);
    } catch {
      // ended meanwhile
    }
  }
  return byParent;
}

/** The container's processes: its cgroup's, else its first process, its descendants and the members of its pid namespace. */
export function containerProcesses(record: RuntimeRecord): number[] {
  const fromCgroup = cgroupProcesses(record.cgroup);
  if (fromCgroup) return fromCgroup;
  const found = new Set<number>([record.pid]);
  const byParent = children();
  const queue = [record.pid];
  while (queue.length) {
    for (const child of byParent.get(queue.pop()!) ?? []) {
      if (!found.has(child)) {
        found.add(child);
        queue.push(child);
      }
    }
  }
  let ns: string | undefined;
  try {
    ns = readlinkSync(`/proc/${record.pid}/ns/pid`);
  } catch {
    ns = undefined;
  }
  if (ns && ns !== readlinkSync('/proc/self/ns/pid')) {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (readlinkSync(`/proc/${name}/ns/pid`) === ns) found.add(Number(name));
      } catch {
        // not ours to read, or ended
      }
    }
  }
  return [...found].filter((pid) => existsSync(`/proc/${pid}`)).sort((a, b) => a - b);
}

/** Signals of the caller a foreground run/exec passes on (SIGINT/SIGQUIT reach the container through the terminal). */
function forwardSignals(executor: ExecutorHandle): () => void {
  const forward = (signal: NodeJS.Signals) => executor.kill(signal);
  const ignored = (): void => {};
  const forwarded: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
  process.on('SIGINT', ignored);
  process.on('SIGQUIT', ignored);
  for (const signal of forwarded) process.on(signal, forward);
  return () => {
    for (const signal of forwarded) process.off(signal, forward);
    process.off('SIGINT', ignored);
    process.off('SIGQUIT', ignored);
  };
}

/**
 * A terminal without process.consoleSize: the size of ours when we relay it,
 * else 24x80 until the console socket's holder sets the real one (a 0x0
 * terminal makes programs such as stty fail meanwhile).
 */
async function defaultConsoleSize(monitor: MonitorPlan): Promise<{ rows: number; cols: number }> {
  if (monitor.consoleSocket) return { rows: 24, cols: 80 };
  return (await import('../../container/terminal.js')).initialTerminalSize();
}

/** After the start byte: until the held process has run execve (its executable changed), briefly. */
async function waitForExecve(pid: number, before: string | undefined): Promise<void> {
  if (before === undefined) return;
  for (let i = 0; i < 250; i++) {
    let now: string | undefined;
    try {
      now = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return;
    }
    if (now !== before) return;
    await sleep(2);
  }
}

export class OciRuntime {
  readonly store: RuntimeStore;

  constructor(private readonly options: RuntimeOptions) {
    this.store = new RuntimeStore(options.root);
  }

  private executorOptions(extra: ExecutorOptions = {}): ExecutorOptions {
    return { detached: false, stdio: 'inherit', ...(this.options.trace ? { onTrace: this.options.trace } : {}), ...extra };
  }

  /** prestart, createRuntime, createContainer: the container process waits at its sync point meanwhile. */
  private async createHooks(spec: OciSpec, record: RuntimeRecord, pid: number): Promise<void> {
    const state: OciState = { ...this.store.state({ ...record, pid }, 'creating') };
    await runHooks('prestart', spec, state, this.options.warn);
    await runHooks('createRuntime', spec, state, this.options.warn);
    await runHooks('createContainer', spec, state, this.options.warn);
  }

  /** Builds the container and holds it (the common part of create and run). */
  private async build(id: string, options: CreateOptions, monitor: MonitorPlan, startFifo: string | undefined): Promise<{ record: RuntimeRecord; spec: OciSpec; executor: ExecutorHandle; release: () => Promise<void> }> {
    const bundle = resolve(options.bundle || '.');
    const spec = bundleSpec(bundle, readConfig(bundle));
    this.store.reserve(id);
    const record = this.store.newRecord(id, bundle, spec.root!.path, spec.annotations ?? {});
    let cgroup: Awaited<ReturnType<typeof ociCgroup>> = null;
    let executor: ExecutorHandle | undefined;
    try {
      this.store.save(record);
      this.store.saveConfig(id, spec);
      cgroup = await ociCgroup(id, spec, this.options.systemdCgroup, this.options.warn);
      const plan = await ociPlan(spec, { monitor, hold: true, ...(startFifo ? { startFifo } : {}), trace: this.options.trace !== undefined });
      cgroup?.applyTo(plan);
      if (plan.process.terminal && !plan.process.consoleSize) plan.process.consoleSize = await defaultConsoleSize(monitor);
      executor = startExecutor(
        plan,
        this.executorOptions({
          onPause: (pids) => this.createHooks(spec, record, pids.pid),
          ...(cgroup?.onSetup ? { onSetup: cgroup.onSetup } : {}),
        }),
      );
      const pids = await executor.created;
      record.pid = pids.pid;
      const start = processStartTime(pids.pid);
      if (start) record.pidStartTime = start;
      if (cgroup) record.cgroup = cgroup.record();
      this.store.save(record);
      if (options.pidFile) writePidFile(options.pidFile, pids.pid);
      const held = executor;
      const prepared = cgroup;
      return {
        record,
        spec,
        executor: held,
        release: async () => {
          held.kill('SIGKILL');
          if (record.pid) killQuietly(record.pid, osConstants.signals.SIGKILL);
          await prepared?.release();
          this.store.remove(id);
        },
      };
    } catch (error) {
      executor?.kill('SIGKILL');
      if (record.pid) killQuietly(record.pid, osConstants.signals.SIGKILL);
      await cgroup?.release();
      this.store.remove(id);
      throw error;
    }
  }

  async create(id: string, options: CreateOptions): Promise<void> {
    const spec = bundleSpec(resolve(options.bundle || '.'), readConfig(resolve(options.bundle || '.')));
    if (spec.process?.terminal && !options.consoleSocket) throw err('cannot allocate tty if runc will detach without setting console socket');
    if (!spec.process?.terminal && options.consoleSocket) throw err('cannot use console socket if runc will not detach or allocate tty');
    const monitor: MonitorPlan = { mode: 'handoff', dieWithParent: true, ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}) };
    const built = await this.build(id, options, monitor, this.store.fifo(id));
    try {
      // The monitor leaves once the container is held: then it belongs to our caller's subreaper.
      const done = await built.executor.monitorExit;
      if (done.code !== 0) throw err(`the executor exited with ${done.code === null ? `signal ${done.signal}` : `status ${done.code}`} after creating the container`);
    } catch (error) {
      await built.release();
      throw error;
    }
  }

  async start(id: string): Promise<void> {
    const record = this.store.load(id);
    const status = this.store.status(record);
    if (status === 'stopped') throw err('cannot start a container that has stopped');
    if (status === 'running') throw err('cannot start an already running container');
    if (status !== 'created') throw err(`cannot start a container in the ${status} state`);
    const spec = this.store.config(id);
    await runHooks('startContainer', spec, this.store.state(record, 'created'), this.options.warn);
    let before: string | undefined;
    try {
      before = readlinkSync(`/proc/${record.pid}/exe`);
    } catch {
      before = undefined;
    }
    const fifo = this.store.fifo(id);
    let fd: number;
    try {
      // Non-blocking: with nobody reading (the container is gone) this fails with ENXIO instead of waiting.
      fd = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENXIO' || code === 'ENOENT') throw err('cannot start a container that has stopped');
      throw err(`open ${fifo}: ${(error as Error).message}`);
    }
    try {
      writeSync(fd, 'G');
    } finally {
      closeSync(fd);
      rmSync(fifo, { force: true });
    }
    if ((spec.hooks?.poststart ?? []).length) {
      await waitForExecve(record.pid, before);
      await runHooks('poststart', spec, this.store.state(record, 'running'), this.options.warn);
    }
  }

  state(id: string): OciState & { rootfs: string; created: string; owner: string } {
    const record = this.store.load(id);
    return { ...this.store.state(record), rootfs: record.rootfs, created: record.created, owner: record.owner };
  }

  list(): (OciState & { rootfs: string; created: string; owner: string })[] {
    const out = [];
    for (const id of this.store.ids()) {
      try {
        out.push(this.state(id));
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  kill(id: string, signal: string | undefined, all: boolean): void {
    const record = this.store.load(id);
    const status = this.store.status(record);
    if (status !== 'created' && status !== 'running') throw err('container not running');
    const number = parseSignal(signal);
    const targets = all ? containerProcesses(record) : [record.pid];
    for (const pid of targets) killQuietly(pid, number);
  }

  private async waitGone(record: RuntimeRecord): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (this.store.status(record) === 'stopped') return;
      await sleep(100);
    }
    throw err('container init still running');
  }

  /** poststop hooks, the cgroup, the state directory. */
  private async destroy(record: RuntimeRecord): Promise<void> {
    let spec: OciSpec | undefined;
    try {
      spec = this.store.config(record.id);
    } catch {
      spec = undefined;
    }
    await releaseOciCgroup(record.cgroup).catch((error: unknown) => this.options.warn(`remove the cgroup of ${record.id}: ${(error as Error).message}`));
    this.store.remove(record.id);
    if (spec) await runHooks('poststop', spec, this.store.state(record, 'stopped'), this.options.warn);
  }

  async delete(id: string, force: boolean): Promise<void> {
    let record: RuntimeRecord;
    try {
      record = this.store.load(id);
    } catch (error) {
      // An aborted create may have left the directory without its state: clean it.
      if (existsSync(this.store.dir(id))) this.store.remove(id);
      throw error;
    }
    const status: RuntimeStatus = this.store.status(record);
    if (status === 'running' || status === 'creating') {
      if (!force) throw err(`cannot delete container ${id} that is not stopped: ${status}`);
    }
    if (status !== 'stopped') {
      if (status === 'creating') killQuietly(record.creatorPid, osConstants.signals.SIGKILL);
      else for (const pid of containerProcesses(record)) killQuietly(pid, osConstants.signals.SIGKILL);
      await this.waitGone(record);
    }
    await this.destroy(record);
  }

  /** runc run: the container in the foreground, its exit status returned (or created and started with --detach). */
  async run(id: string, options: RunOptions): Promise<number> {
    if (options.detach) {
      await this.create(id, options);
      try {
        await this.start(id);
      } catch (error) {
        await this.delete(id, true).catch(() => {});
        throw error;
      }
      return 0;
    }
    const monitor: MonitorPlan = { mode: 'foreground', dieWithParent: true, terminalStdin: true, ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}) };
    const built = await this.build(id, options, monitor, undefined);
    const { record, spec, executor } = built;
    const stopForwarding = forwardSignals(executor);
    let code: number;
    try {
      await runHooks('startContainer', spec, this.store.state(record, 'created'), this.options.warn);
      executor.release();
      await executor.started;
      await runHooks('poststart', spec, this.store.state(record, 'running'), this.options.warn);
      code = (await executor.exit).code;
    } catch (error) {
      stopForwarding();
      await built.release();
      if (!options.keep) await runHooks('poststop', spec, this.store.state(record, 'stopped'), this.options.warn);
      throw error;
    }
    stopForwarding();
    if (!options.keep) await this.destroy(record);
    return code;
  }

  async exec(id: string, options: ExecOptions): Promise<number> {
    const record = this.store.load(id);
    const status = this.store.status(record);
    if (status === 'stopped') throw err('cannot exec in a stopped container');
    if (status !== 'created' && status !== 'running') throw err(`cannot exec in a container in the ${status} state`);
    const spec = this.store.config(id);
    const proc = this.execProcess(spec, options);
    if (!proc.args?.length) throw err('args must not be empty');
    if (proc.terminal && options.detach && !options.consoleSocket) throw err('cannot allocate tty if runc will detach without setting console socket');
    if (!proc.terminal && options.consoleSocket) throw err('cannot use console socket if runc will not detach or allocate tty');

    const { user, namespaces } = joinPlanNamespaces(spec, record.pid);
    const seccompFilter = await compileSeccomp(spec);
    const consoleSocket = options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {};
    const cgroupPath = (record.cgroup as { path?: string } | undefined)?.path;
    const plan: ExecutorPlan = {
      trace: this.options.trace !== undefined,
      user,
      namespaces,
      outerOps: [],
      innerOps: [],
      process: {
        args: proc.args,
        env: proc.env ?? [],
        cwd: proc.cwd || '/',
        uid: proc.user.uid,
        gid: proc.user.gid,
        additionalGids: proc.user.additionalGids ?? [],
        capabilities: toCapabilitySets(proc.capabilities ?? {}),
        noNewPrivileges: proc.noNewPrivileges ?? false,
        seccompFilter,
        rlimits: (proc.rlimits ?? []).map((r) => ({ resource: rlimitNumber(r.type), soft: r.soft, hard: r.hard })),
        oomScoreAdj: proc.oomScoreAdj ?? null,
        searchPath: !proc.args[0]!.includes('/'),
        terminal: proc.terminal ?? false,
        ...(proc.consoleSize ? { consoleSize: { rows: proc.consoleSize.height, cols: proc.consoleSize.width } } : {}),
        ...(proc.user.umask !== undefined ? { umask: proc.user.umask } : {}),
      },
      monitor: options.detach
        ? { mode: 'handoff', dieWithParent: true, ...consoleSocket }
        : { mode: 'foreground', dieWithParent: true, terminalStdin: true, ...consoleSocket },
      ...(cgroupPath ? { joinCgroup: `${cgroupPath}/cgroup.procs` } : {}),
    };
    if (plan.process.terminal && !plan.process.consoleSize) plan.process.consoleSize = await defaultConsoleSize(plan.monitor);
    const executor = startExecutor(plan, this.executorOptions());
    const pids = await executor.started;
    if (options.pidFile) writePidFile(options.pidFile, pids.pid);
    if (options.detach) {
      await executor.monitorExit;
      return 0;
    }
    const stopForwarding = forwardSignals(executor);
    try {
      return (await executor.exit).code;
    } finally {
      stopForwarding();
    }
  }

  /** The process to exec: --process FILE as it is, else the container's own with the flags' changes (as runc). */
  private execProcess(spec: OciSpec, options: ExecOptions): OciProcess {
    if (options.processFile) {
      let text: string;
      try {
        text = readFileSync(options.processFile, 'utf8');
      } catch (error) {
        throw err(`open ${options.processFile}: ${(error as Error).message}`);
      }
      const proc = JSON.parse(text) as OciProcess;
      if (!proc.user) proc.user = { uid: 0, gid: 0 };
      return proc;
    }
    const base = spec.process!;
    const proc: OciProcess = {
      ...base,
      args: options.args,
      terminal: options.tty,
      env: [...(base.env ?? []), ...options.env],
      cwd: options.cwd ?? base.cwd,
      user: { ...base.user },
    };
    delete proc.consoleSize;
    if (options.user) {
      const [uid, gid] = options.user.split(':');
      if (!/^\d+$/.test(uid ?? '') || (gid !== undefined && !/^\d+$/.test(gid))) throw err(`invalid --user ${options.user}: use uid[:gid]`);
      proc.user.uid = Number(uid);
      if (gid !== undefined) proc.user.gid = Number(gid);
    }
    if (options.additionalGids.length) proc.user.additionalGids = options.additionalGids;
    if (options.noNewPrivs) proc.noNewPrivileges = true;
    if (options.caps.length) {
      const caps = options.caps.map((c) => normalizeCapability(c));
      const add = (list: string[] | undefined) => [...new Set([...(list ?? []), ...caps])];
      const c = base.capabilities ?? {};
      proc.capabilities = { bounding: add(c.bounding), effective: add(c.effective), permitted: add(c.permitted), inheritable: add(c.inheritable), ambient: add(c.ambient) };
    }
    return proc;
  }
}
