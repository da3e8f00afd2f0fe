/**
 * Stop, kill, wait, remove: the parts of a container's life after start.
 * Every step reads the live status first (store.refreshStatus), so a
 * container whose monitor died unseen is handled like one that exited.
 */
import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { NookError, errnoCode } from '../lib/errors.js';
import type { ContainerRecord, ContainerStore } from './store.js';

export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') return signal;
  if (/^\d+$/.test(signal)) return Number(signal);
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const number = (constants.signals as Record<string, number>)[name];
  if (number === undefined) throw new NookError(`unknown signal "${signal}"`);
  return number;
}

export function killContainer(store: ContainerStore, record: ContainerRecord, signal: string | number = 'SIGKILL'): void {
  const live = store.refreshStatus(record);
  if (live.status !== 'running' || !live.pid) throw new NookError(`container ${record.name} is not running`);
  try {
    process.kill(live.pid, signalNumber(signal));
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') throw new NookError(`cannot signal container ${record.name}: ${(error as Error).message}`, { cause: error });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the container is no longer running; returns its record then. */
export async function waitForExit(store: ContainerStore, record: ContainerRecord, timeoutMs = Infinity): Promise<ContainerRecord> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const live = store.refreshStatus(store.find(record.id) ?? record);
    if (live.status !== 'running') return live;
    if (Date.now() >= deadline) return live;
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
}

/** SIGTERM (or the image's StopSignal), then SIGKILL after `timeoutSeconds`, as podman stop. */
export async function stopContainer(store: ContainerStore, record: ContainerRecord, timeoutSeconds = 10): Promise<ContainerRecord> {
  const live = store.refreshStatus(record);
  if (live.status !== 'running') return live;
  killContainer(store, live, live.stopSignal ?? 'SIGTERM');
  const after = await waitForExit(store, live, timeoutSeconds * 1000);
  if (after.status !== 'running') return after;
  killContainer(store, after, 'SIGKILL');
  return waitForExit(store, after, 10_000);
}

/**
 * Removes the container's directories. The upper layer may hold files owned
 * by subordinate ids that the user cannot delete directly: those are removed
 * from inside a user namespace with the user's mapping, as `podman unshare rm`.
 */
export async function removeContainer(store: ContainerStore, record: ContainerRecord, options: { force: boolean }): Promise<void> {
  let live = store.refreshStatus(record);
  if (live.status === 'running') {
    if (!options.force) throw new NookError(`container ${record.name} is running: stop it first or use rm -f`);
    killContainer(store, live, 'SIGKILL');
    live = await waitForExit(store, live, 10_000);
    if (live.status === 'running') throw new NookError(`container ${record.name} did not exit after SIGKILL`);
  }
  const state = live.network.state as Parameters<typeof import('../network/attach.js').releaseNetwork>[0];
  if (state) {
    const { releaseNetwork } = await import('../network/attach.js');
    await releaseNetwork(state);
  }
  if (live.cgroup?.path) await (await import('../cgroups/container.js')).releaseCgroup(live.cgroup);
  rmSync(store.stateDir(live.id), { recursive: true, force: true });
  await removeTree(store.dataDir(live.id));
}

export async function removeTree(path: string): Promise<void> {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (error) {
    const code = errnoCode(error);
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw error;
  }
  // Directories owned by subordinate ids (a copied-up /etc of an image whose
  // files belong to uid 1000...): only a process in the user namespace may empty them.
  const { removeInUserNamespace } = await import('../idmap/userns.js');
  await removeInUserNamespace(path);
}
