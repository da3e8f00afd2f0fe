/**
 * nook port CONTAINER [PRIVATE_PORT[/PROTO]]: the published ports of a
 * running container, as podman prints them, from its recorded network state.
 */
import type { Command } from 'commander';
import { printJson, type GlobalOptions } from '../output.js';

export function register(program: Command): void {
  program
    .command('port')
    .description('list the published ports of a container, or the host address of one of its ports')
    .argument('<container>', 'container name or id')
    .argument('[port]', 'a container port, optionally with /tcp or /udp (default tcp)')
    .option('--format <format>', 'json for scripts')
    .addHelpText('after', '\nExamples:\n  nook port web            80/tcp -> 0.0.0.0:8080\n  nook port web 80         0.0.0.0:8080\n')
    .action(async (container: string, port: string | undefined, options: { format?: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const [{ ContainerStore }, { resolvePaths }, { NookError }, { publishedPorts, selectPorts }] = await Promise.all([
        import('../../container/store.js'),
        import('../../lib/paths.js'),
        import('../../lib/errors.js'),
        import('../../network/ports-view.js'),
      ]);
      const record = new ContainerStore(resolvePaths(globals)).get(container);
      if (record.status !== 'running') throw new NookError(`container ${record.name} is not running`);
      const ports = selectPorts(publishedPorts(record.network.state), port);
      if (options.format === 'json') return printJson(ports);
      if (options.format !== undefined) throw new NookError(`unknown --format "${options.format}": use json`);
      const lines = port === undefined
        ? ports.map((p) => `${p.containerPort}/${p.protocol} -> ${p.hostIp}:${p.hostPort}`)
        : ports.map((p) => `${p.hostIp}:${p.hostPort}`);
      if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
    });
}
