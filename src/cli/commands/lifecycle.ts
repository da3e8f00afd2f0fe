/**
 * create, start, stop, kill, rm, ps, logs, wait, inspect, container ...:
 * the life of a container after `run`, with podman's flags.
 */
import type { Command } from 'commander';
import { NookError } from '../../lib/errors.js';
import { printJson, printTable, type GlobalOptions } from '../output.js';
import { addContainerFlags, toContainerOptions } from './container-flags.js';
import type { ContainerRecord, ContainerStore } from '../../container/store.js';

async function openStore(cmd: Command): Promise<{ store: ContainerStore; globals: GlobalOptions; paths: import('../../lib/paths.js').NookPaths }> {
  const globals = cmd.optsWithGlobals<GlobalOptions>();
  const [{ ContainerStore }, { resolvePaths }] = await Promise.all([import('../../container/store.js'), import('../../lib/paths.js')]);
  const paths = resolvePaths(globals);
  return { store: new ContainerStore(paths), globals, paths };
}

/** Runs `fn` for each named container; reports each failure on its own line and fails overall if any did. */
async function forEach(names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let failed: unknown;
  for (const name of names) {
    try {
      await fn(name);
    } catch (error) {
      if (failed) process.stderr.write(`Error: ${(failed as Error).message}\n`);
      failed = error;
    }
  }
  if (failed) throw failed;
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} seconds ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} hours ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function statusText(c: ContainerRecord): string {
  if (c.status === 'running') return `Up ${ago(c.startedAt).replace(' ago', '')}`;
  if (c.status === 'exited') return `Exited (${c.exitCode ?? 0}) ${ago(c.finishedAt)}`;
  return 'Created';
}

function psJson(c: ContainerRecord): Record<string, unknown> {
  return {
    Id: c.id,
    Names: [c.name],
    Image: c.image,
    ImageID: c.imageId,
    Command: c.command,
    Created: c.created,
    State: c.status,
    Status: statusText(c),
    Pid: c.status === 'running' ? c.pid ?? 0 : 0,
    ExitCode: c.exitCode ?? 0,
    StartedAt: c.startedAt ?? null,
    ExitedAt: c.finishedAt ?? null,
    Ports: (c.network.state as { ports?: unknown[] } | undefined)?.ports ?? [],
    Network: c.network.mode,
    AutoRemove: c.autoRemove,
  };
}

export function register(program: Command): void {
  addContainerFlags(
    program.command('create').description('create a container without starting it').passThroughOptions(),
  ).action(async (image: string, command: string[], flags: Parameters<typeof toContainerOptions>[2], cmd: Command) => {
    const { store, paths } = await openStore(cmd);
    const { createContainer } = await import('../../container/create.js');
    const { record } = await createContainer(toContainerOptions(image, command, flags), { paths, store });
    if (record.idMappingWarning) process.stderr.write(`WARN: ${record.idMappingWarning}\n`);
    process.stdout.write(`${record.id}\n`);
  });

  program
    .command('start')
    .description('start one or more created or stopped containers')
    .argument('<containers...>')
    .option('-a, --attach', 'attach to the container\'s output and wait for it', false)
    .option('-i, --interactive', 'attach stdin too', false)
    .action(async (names: string[], flags: { attach: boolean; interactive: boolean }, cmd: Command) => {
      const { store, paths, globals } = await openStore(cmd);
      const { attachAndStart } = await import('../../container/run.js');
      if (flags.attach && names.length > 1) throw new NookError('start --attach takes one container');
      await forEach(names, async (name) => {
        const record = store.get(name);
        if (record.status === 'running') throw new NookError(`container ${record.name} is already running`);
        const report = await attachAndStart(record, paths, store, { tty: record.tty, interactive: flags.interactive, detach: !flags.attach }, globals.trace ? { trace: (l) => process.stderr.write(`[trace] ${l}\n`) } : {});
        if (flags.attach) process.exitCode = report.exitCode ?? 0;
        else process.stdout.write(`${name}\n`);
      });
    });

  program
    .command('stop')
    .description('stop running containers: SIGTERM (or the image\'s stop signal), then SIGKILL after a timeout')
    .argument('[containers...]')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .option('-a, --all', 'stop all running containers', false)
    .action(async (names: string[], flags: { time: string; all: boolean }, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { stopContainer } = await import('../../container/lifecycle.js');
      const targets = flags.all ? store.list().filter((c) => c.status === 'running').map((c) => c.id) : names;
      if (!targets.length && !flags.all) throw new NookError('stop needs at least one container (or --all)');
      await forEach(targets, async (name) => {
        await stopContainer(store, store.get(name), Number(flags.time));
        process.stdout.write(`${name}\n`);
      });
    });

  program
    .command('kill')
    .description('send a signal to running containers')
    .argument('<containers...>')
    .option('-s, --signal <signal>', 'signal to send', 'SIGKILL')
    .action(async (names: string[], flags: { signal: string }, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { killContainer } = await import('../../container/lifecycle.js');
      await forEach(names, async (name) => {
        killContainer(store, store.get(name), flags.signal);
        process.stdout.write(`${name}\n`);
      });
    });

  program
    .command('rm')
    .description('remove containers')
    .argument('[containers...]')
    .option('-f, --force', 'kill running containers first', false)
    .option('-a, --all', 'remove all containers', false)
    .action(async (names: string[], flags: { force: boolean; all: boolean }, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { removeContainer } = await import('../../container/lifecycle.js');
      const targets = flags.all ? store.list().map((c) => c.id) : names;
      if (!targets.length && !flags.all) throw new NookError('rm needs at least one container (or --all)');
      await forEach(targets, async (name) => {
        await removeContainer(store, store.get(name), { force: flags.force });
        process.stdout.write(`${name}\n`);
      });
    });

  addPsFlags(program.command('ps').description('list containers'));

  program
    .command('inspect')
    .description('show a container\'s record and configuration as JSON')
    .argument('<containers...>')
    .option('--format <format>', 'json (default)')
    .action(async (names: string[], _flags: unknown, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { readSpec } = await import('../../container/start.js');
      const out = names.map((name) => {
        const c = store.get(name);
        return {
          ...psJson(c),
          Name: c.name,
          State: {
            Status: c.status,
            Running: c.status === 'running',
            Pid: c.status === 'running' ? c.pid ?? 0 : 0,
            ExitCode: c.exitCode ?? 0,
            OOMKilled: c.oomKilled ?? false,
            StartedAt: c.startedAt ?? null,
            FinishedAt: c.finishedAt ?? null,
          },
          Driver: c.storageDriver,
          HostName: c.hostname,
          NetworkSettings: c.network,
          Config: readSpec(store, c.id),
        };
      });
      printJson(out);
    });

  program
    .command('wait')
    .description('wait for containers to exit and print their exit codes')
    .argument('<containers...>')
    .action(async (names: string[], _flags: unknown, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { waitForExit } = await import('../../container/lifecycle.js');
      await forEach(names, async (name) => {
        const done = await waitForExit(store, store.get(name));
        process.stdout.write(`${done.exitCode ?? 0}\n`);
      });
    });

  program
    .command('logs')
    .description('print a detached container\'s output')
    .argument('<container>')
    .option('-f, --follow', 'keep printing new output until the container exits', false)
    .option('--tail <n>', 'only the last N lines')
    .option('-t, --timestamps', 'show timestamps', false)
    .action(async (name: string, flags: { follow: boolean; tail?: string; timestamps: boolean }, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { printLogs } = await import('../../container/logs.js');
      await printLogs(store, store.get(name), {
        follow: flags.follow,
        timestamps: flags.timestamps,
        ...(flags.tail !== undefined ? { tail: Number(flags.tail) } : {}),
      });
    });

  const container = program.command('container').description('manage containers');
  container
    .command('prune')
    .description('remove all stopped containers')
    .action(async (_flags: unknown, cmd: Command) => {
      const { store } = await openStore(cmd);
      const { removeContainer } = await import('../../container/lifecycle.js');
      for (const c of store.list().filter((c) => c.status !== 'running')) {
        await removeContainer(store, c, { force: false });
        process.stdout.write(`${c.id}\n`);
      }
    });
  container
    .command('cleanup', { hidden: true })
    .description('run by a container\'s monitor when the container exits: record the exit, honour --rm')
    .argument('<id>')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const { store } = await openStore(cmd);
      const record = store.find(id);
      if (!record) return;
      const live = store.refreshStatus(record);
      // The executor has reported any OOM kill already (exit file): the cgroup can go.
      if (live.status !== 'running' && live.cgroup?.path) await (await import('../../cgroups/container.js')).releaseCgroup(live.cgroup).catch(() => {});
      if (live.autoRemove && live.status !== 'running') {
        const { removeContainer } = await import('../../container/lifecycle.js');
        await removeContainer(store, live, { force: false });
      }
    });
  addPsFlags(container.command('ls').alias('list').description('list containers (as ps)'));
}

function addPsFlags(command: Command): void {
  command
    .option('-a, --all', 'show all containers, not only running ones', false)
    .option('-q, --quiet', 'print ids only', false)
    .option('--format <format>', 'json for scripts')
    .action(async (flags: { all: boolean; quiet: boolean; format?: string }, cmd: Command) => {
      const { store } = await openStore(cmd);
      const list = store.list().filter((c) => flags.all || c.status === 'running').sort((a, b) => b.created.localeCompare(a.created));
      if (flags.format === 'json') return printJson(list.map(psJson));
      if (flags.quiet) return void process.stdout.write(list.map((c) => `${shortId(c.id)}\n`).join(''));
      printTable(
        ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
        list.map((c) => [shortId(c.id), c.image, c.command.join(' ').slice(0, 20), ago(c.created), statusText(c), c.network.publish.join(', '), c.name]),
      );
    });
}
