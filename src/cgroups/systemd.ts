/**
 * The systemd manager: each container in a transient scope of the user's
 * systemd instance (nook-<id>.scope, in app.slice of user@UID.service), made
 * with D-Bus StartTransientUnit through busctl, as crun does with its own
 * D-Bus client.
 *
 * A scope is made around existing processes: the executor holds its setup
 * process before it creates any namespace (plan.holdBeforeNamespaces), nook
 * names that pid in StartTransientUnit and lets it go once systemd has moved
 * it. systemd moves it even from a cgroup the user does not own (an ssh
 * session's scope), by asking the system instance, which nook could not do by
 * writing cgroup.procs itself.
 *
 * Properties: Delegate=yes (the container may manage its own subtree),
 * OOMPolicy=continue (an OOM kill must not make systemd stop the scope: the
 * setup process has to stay to report it), CollectMode=inactive-or-failed
 * (nothing left behind to clash with the next start), and the limits as
 * systemd properties (MemoryMax=, CPUQuota=, TasksMax=...), so that systemd,
 * which owns the scope's own files, keeps them on a daemon-reload.
 */
import { existsSync, readFileSync } from 'node:fs';
import { NookError } from '../lib/errors.js';
import type { CgroupManager, CgroupPlacement, ContainerCgroup } from './manager.js';
import { systemdProperties, type Resources, type SystemdProperty } from './resources.js';
import { CGROUP_ROOT } from './select.js';
import { readCgroupStats, type CgroupStats } from './stats.js';

const DESTINATION = 'org.freedesktop.systemd1';
const OBJECT = '/org/freedesktop/systemd1';
const INTERFACE = 'org.freedesktop.systemd1.Manager';
/** Under software emulation a busy user manager can take seconds. */
const CALL_TIMEOUT_MS = 30_000;
const PLACE_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function scopeName(containerId: string): string {
  return `nook-${containerId}.scope`;
}

function flatten(props: SystemdProperty[]): string[] {
  return [String(props.length), ...props.flatMap((p) => [p.name, p.signature, ...p.values])];
}

/** busctl --user call ...; the error is systemd's message ("Unit ... not loaded."). */
async function call(bus: string | undefined, method: string, signature: string, args: string[]): Promise<string> {
  const { execa } = await import('execa');
  const result = await execa('busctl', ['--user', 'call', '--', DESTINATION, OBJECT, INTERFACE, method, signature, ...args], {
    reject: false,
    timeout: CALL_TIMEOUT_MS,
    env: bus ? { DBUS_SESSION_BUS_ADDRESS: bus } : {},
  });
  if (result.failed) {
    const message = (result.stderr || result.stdout || (result as { shortMessage?: string }).shortMessage || `exit status ${result.exitCode}`).trim().replace(/^Call failed: /, '').replace(/\.$/, '');
    if ((result as { code?: string }).code === 'ENOENT') throw new NookError('busctl is not installed: the systemd cgroup manager needs it (it comes with systemd)');
    throw new SystemdCallError(method, message);
  }
  return result.stdout;
}

export class SystemdCallError extends NookError {
  constructor(readonly method: string, readonly systemdMessage: string) {
    super(`systemd ${method}: ${systemdMessage}`);
  }
}

/** The "0::" path of a process, or null when it is gone. */
function cgroupOf(pid: number): string | null {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line ? line.slice(3).trim() : null;
  } catch {
    return null;
  }
}

export class SystemdCgroupManager implements CgroupManager {
  readonly name = 'systemd' as const;

  async create(cgroup: ContainerCgroup, containerId: string, resources: Resources): Promise<CgroupPlacement> {
    const unit = scopeName(containerId);
    let path: string | undefined;
    const placeSetup = async (pid: number): Promise<void> => {
      await this.startScope(cgroup, unit, pid, resources);
      path = await this.waitUntilPlaced(pid, unit);
    };
    return {
      placeSetup,
      path: () => {
        if (!path) throw new NookError(`the scope ${unit} is not made yet`);
        return path;
      },
      record: () => ({ ...cgroup, unit, ...(path ? { path } : {}) }),
    };
  }

  private async startScope(cgroup: ContainerCgroup, unit: string, pid: number, resources: Resources): Promise<void> {
    const base: SystemdProperty[] = [
      { name: 'Description', signature: 's', values: [`nook container ${unit.slice(5, 17)}`] },
      { name: 'PIDs', signature: 'au', values: ['1', String(pid)] },
      { name: 'Delegate', signature: 'b', values: ['true'] },
      { name: 'CollectMode', signature: 's', values: ['inactive-or-failed'] },
    ];
    const oomPolicy: SystemdProperty = { name: 'OOMPolicy', signature: 's', values: ['continue'] };
    const limits = systemdProperties(resources);
    const start = (props: SystemdProperty[]) => call(cgroup.bus, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', [unit, 'fail', ...flatten(props), '0']);
    try {
      await start([...base, oomPolicy, ...limits]);
    } catch (error) {
      if (!(error instanceof SystemdCallError)) throw error;
      if (/OOMPolicy/.test(error.systemdMessage)) {
        // systemd before 253 has no OOMPolicy for scopes (and does not stop them on an OOM kill either).
        await start([...base, ...limits]);
      } else if (/already (loaded|exists)/.test(error.systemdMessage)) {
        // A scope of an earlier run of this container that systemd still holds.
        await call(cgroup.bus, 'StopUnit', 'ss', [unit, 'replace']).catch(() => {});
        await call(cgroup.bus, 'ResetFailedUnit', 's', [unit]).catch(() => {});
        await start([...base, oomPolicy, ...limits]);
      } else {
        throw new NookError(`systemd could not create the scope ${unit}: ${error.systemdMessage}`, { cause: error });
      }
    }
  }

  /** StartTransientUnit queues a job: the pid is in the scope once the job ran. */
  private async waitUntilPlaced(pid: number, unit: string): Promise<string> {
    const deadline = Date.now() + PLACE_TIMEOUT_MS;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const path = cgroupOf(pid);
      if (path === null) throw new NookError(`the container's setup process ${pid} went away while systemd made ${unit}`);
      if (path.endsWith(`/${unit}`)) return `${CGROUP_ROOT}${path}`;
      if (Date.now() > deadline) throw new NookError(`systemd did not move the container's setup process into ${unit} (it is in ${path})`);
      await sleep(delay);
    }
  }

  async update(cgroup: ContainerCgroup, resources: Resources): Promise<void> {
    if (!cgroup.unit || !cgroup.path || !existsSync(cgroup.path)) throw new NookError('the container has no scope (is it running?)');
    const props = systemdProperties(resources);
    if (props.length === 0) return;
    try {
      await call(cgroup.bus, 'SetUnitProperties', 'sba(sv)', [cgroup.unit, 'true', ...flatten(props)]);
    } catch (error) {
      throw new NookError(`systemd could not change the limits of ${cgroup.unit}: ${error instanceof SystemdCallError ? error.systemdMessage : (error as Error).message}`, { cause: error });
    }
  }

  stats(cgroup: ContainerCgroup): CgroupStats {
    return cgroup.path ? readCgroupStats(cgroup.path) : {};
  }

  /**
   * nook exec: systemd adds the held setup process to the running scope
   * (AttachProcessesToUnit), asking its system instance when the process sits
   * in a cgroup the user does not own.
   */
  join(cgroup: ContainerCgroup): { placeSetup?: (pid: number) => Promise<void> } {
    const unit = cgroup.unit;
    if (!unit) return {};
    return {
      placeSetup: async (pid: number) => {
        try {
          await call(cgroup.bus, 'AttachProcessesToUnit', 'ssau', [unit, '', '1', String(pid)]);
        } catch (error) {
          throw new NookError(`systemd could not add the process to ${unit}: ${error instanceof SystemdCallError ? error.systemdMessage : (error as Error).message}`, { cause: error });
        }
        await this.waitUntilPlaced(pid, unit);
      },
    };
  }

  /** The scope goes away by itself when its last process exits; this is for one that is still there. */
  async destroy(cgroup: ContainerCgroup): Promise<void> {
    if (!cgroup.unit || !cgroup.path || !existsSync(cgroup.path)) return;
    try {
      await call(cgroup.bus, 'StopUnit', 'ss', [cgroup.unit, 'replace']);
    } catch (error) {
      if (error instanceof SystemdCallError && /not loaded|No such unit/i.test(error.systemdMessage)) return;
      throw error;
    }
    const deadline = Date.now() + 10_000;
    while (existsSync(cgroup.path) && Date.now() < deadline) await sleep(20);
  }
}
