import type { Command } from 'commander';
import { addContainerFlags, toContainerOptions } from './container-flags.js';
import type { GlobalOptions } from '../output.js';

export function register(program: Command): void {
  addContainerFlags(
    program
      .command('run')
      .description('run a command in a new container')
      .option('-d, --detach', 'run in the background and print the container id', false)
      .option('--rm', 'remove the container when it exits', false)
      .passThroughOptions(),
  ).action(async (image: string, command: string[], flags: Parameters<typeof toContainerOptions>[2], cmd: Command) => {
    const globals = cmd.optsWithGlobals<GlobalOptions>();
    const options = toContainerOptions(image, command, flags);
    const [{ runContainer }, { resolvePaths }] = await Promise.all([import('../../container/run.js'), import('../../lib/paths.js')]);
    const report = await runContainer(options, resolvePaths(globals), {
      warn: (line) => process.stderr.write(`WARN: ${line}\n`),
      ...(globals.trace ? { trace: (line: string) => process.stderr.write(`[trace] ${line}\n`) } : {}),
    });
    if (options.detach) {
      process.stdout.write(`${report.record.id}\n`);
    } else {
      process.exitCode = report.exitCode ?? 0;
    }
  });
}
