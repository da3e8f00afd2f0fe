/**
 * `nook info [--format json]`: versions, identity and id mappings, paths, and
 * the storage driver, network mode and cgroup manager nook will use, with why.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../output.js';
import type { HostInfo } from '../../host/info.js';
import type { IdMapEntry } from '../../runtime/plan.js';

interface InfoOptions {
  format?: string;
}

function maps(entries: IdMapEntry[]): string {
  return entries.map((e) => `${e.inside}:${e.outside}:${e.count}`).join(', ');
}

export function renderInfo(info: HostInfo): string {
  const tool = (name: keyof HostInfo['tools']) => {
    const t = info.tools[name];
    return t.path ? `${t.path}${t.version ? ` (${t.version})` : ''}` : 'not installed';
  };
  const lines = [
    `nook:       ${info.nook.version} (node ${info.node.version})`,
    `executor:   ${info.nook.executor}`,
    `host:       ${info.host.distribution}, kernel ${info.host.kernel}, ${info.host.arch}`,
    `user:       ${info.rootless.user} (uid ${info.rootless.uid}, gid ${info.rootless.gid})`,
    `uid map:    ${maps(info.rootless.uidMap)}   (inside:outside:count)`,
    `gid map:    ${maps(info.rootless.gidMap)}`,
    `            ${info.rootless.mapping}`,
    `root:       ${info.paths.root}`,
    `runroot:    ${info.paths.runRoot}`,
    `storage:    ${info.storage.driver}${info.storage.mountOptions.length ? ` (${info.storage.mountOptions.join(',')})` : ''}`,
    `            ${info.storage.reason}`,
    `network:    ${info.network.mode}`,
    `            ${info.network.reason}`,
    `cgroups:    ${info.cgroups.manager} (${info.cgroups.version})`,
    `            ${info.cgroups.reason}`,
    'tools:',
    ...(['newuidmap', 'newgidmap', 'slirp4netns', 'fuse-overlayfs', 'unshare'] as const).map((name) => `  ${`${name}:`.padEnd(16)}${tool(name)}`),
  ];
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('info')
    .description('show versions, id mappings, paths, and the storage driver, network mode and cgroup manager nook will use (with why)')
    .option('--format <format>', 'output format: text or json', 'text')
    .addHelpText('after', '\nRun `nook doctor` to learn how to get a better choice than the one shown.\n')
    .action(async (options: InfoOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & InfoOptions>();
      const [{ gatherInfo }, { resolvePaths }, { printJson }] = await Promise.all([import('../../host/info.js'), import('../../lib/paths.js'), import('../output.js')]);
      const info = await gatherInfo(resolvePaths({ root: globals.root, runroot: globals.runroot }));
      if (options.format === 'json') printJson(info);
      else if (options.format === 'text' || options.format === undefined) process.stdout.write(renderInfo(info));
      else {
        const { NookError } = await import('../../lib/errors.js');
        throw new NookError(`unknown format ${options.format}: use text or json`);
      }
    });
}
