import type { Command } from 'commander';
import type { GlobalOptions } from '../output.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('exec')
    .description('run a command in a running container')
    .argument('<container>')
    .argument('<command...>')
    .option('-e, --env <NAME=VALUE>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (and group) to run as')
    .option('-t, --tty', 'allocate a pseudo-terminal', false)
    .option('-i, --interactive', 'keep stdin open', false)
    .option('--privileged', 'all capabilities of the container\'s user namespace, no seccomp', false)
    .passThroughOptions()
    .action(async (name: string, command: string[], flags: { env: string[]; workdir?: string; user?: string; tty: boolean; interactive: boolean; privileged: boolean }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const [{ ContainerStore }, { resolvePaths }, { execInContainer }] = await Promise.all([
        import('../../container/store.js'),
        import('../../lib/paths.js'),
        import('../../container/exec.js'),
      ]);
      const store = new ContainerStore(resolvePaths(globals));
      process.exitCode = await execInContainer(store, store.get(name), {
        command,
        env: flags.env,
        tty: flags.tty,
        interactive: flags.interactive,
        privileged: flags.privileged,
        ...(flags.workdir !== undefined ? { workdir: flags.workdir } : {}),
        ...(flags.user !== undefined ? { user: flags.user } : {}),
        ...(globals.trace ? { trace: (line: string) => process.stderr.write(`[trace] ${line}\n`) } : {}),
      });
    });
}
