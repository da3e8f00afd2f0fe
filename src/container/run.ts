/**
 * `nook run`: create, start, and (unless detached) stay with the container
 * until it exits, then record the exit and honour --rm.
 */
import type { NookPaths } from '../lib/paths.js';
import { createContainer } from './create.js';
import { removeContainer } from './lifecycle.js';
import type { ContainerOptions } from './options.js';
import { startContainer } from './start.js';
import { ContainerStore, type ContainerRecord } from './store.js';
import { mark } from '../lib/timing.js';

export interface RunReport {
  record: ContainerRecord;
  /** For attached runs: the container's exit code (128+N for signal N). */
  exitCode?: number;
  warnings: string[];
}

export interface RunHooks {
  trace?: (line: string) => void;
  warn?: (line: string) => void;
}

export async function runContainer(options: ContainerOptions, paths: NookPaths, hooks: RunHooks = {}): Promise<RunReport> {
  const store = new ContainerStore(paths);
  mark('modules loaded');
  const { record } = await createContainer(options, { paths, store });
  mark('container created');
  if (record.idMappingWarning) hooks.warn?.(record.idMappingWarning);
  return attachAndStart(record, paths, store, { tty: options.tty, interactive: options.interactive, detach: options.detach }, hooks);
}

export async function attachAndStart(
  record: ContainerRecord,
  paths: NookPaths,
  store: ContainerStore,
  how: { tty: boolean; interactive: boolean; detach: boolean },
  hooks: RunHooks = {},
): Promise<RunReport> {
  let started;
  try {
    started = await startContainer(record, paths, store, {
      attach: !how.detach,
      trace: hooks.trace !== undefined,
      ...(hooks.trace ? { onTrace: hooks.trace } : {}),
      ...(hooks.warn ? { onWarn: hooks.warn } : {}),
      ...(!how.detach && how.tty ? { terminal: { stdin: how.interactive } } : {}),
      stdinClosed: !how.interactive && !how.tty,
    });
  } catch (error) {
    if (record.autoRemove) await removeContainer(store, record, { force: true }).catch(() => {});
    throw error;
  }
  mark('container started');
  if (how.detach) return { record: started.record, warnings: [] };

  const forward = (signal: NodeJS.Signals) => started.executor.kill(signal);
  // SIGINT/SIGQUIT from the terminal reach the container directly (same process
  // group), so passing them on too would deliver them twice: Node only must not die of them.
  const ignored = (): void => {};
  const forwarded: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
  process.on('SIGINT', ignored);
  process.on('SIGQUIT', ignored);
  for (const signal of forwarded) process.on(signal, forward);
  let exit;
  try {
    exit = await started.executor.exit;
  } finally {
    for (const signal of forwarded) process.off(signal, forward);
    process.off('SIGINT', ignored);
    process.off('SIGQUIT', ignored);
  }
  mark('container exited');
  const exitCode = exit.code;
  const finished: ContainerRecord = { ...started.record, status: 'exited', exitCode, finishedAt: new Date().toISOString(), ...(exit.oomKilled ? { oomKilled: true } : {}) };
  if (finished.cgroup?.path) await (await import('../cgroups/container.js')).releaseCgroup(finished.cgroup).catch(() => {});
  if (record.autoRemove) {
    await removeContainer(store, finished, { force: true });
  } else {
    store.save(finished);
  }
  mark('cleaned up');
  return { record: finished, exitCode, warnings: [] };
}
