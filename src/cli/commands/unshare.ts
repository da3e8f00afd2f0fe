/**
 * `nook unshare [command...]`: run a command (a shell by default) as root of
 * a user namespace with the user's id mapping, as `podman unshare`: to look
 * at or delete files owned by subordinate ids, or to see the mapping.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../output.js';

interface UnshareOptions {
  mount: boolean;
}

export function register(program: Command): void {
  program
    .command('unshare')
    .description('run a command (default: your shell) as root of a user namespace with your subordinate ids mapped')
    .argument('[command...]', 'command and arguments')
    .option('--no-mount', 'do not create a mount namespace as well')
    .passThroughOptions()
    .addHelpText(
      'after',
      `
Inside, uid 0 is you and uids 1..N are your subordinate ids (/etc/subuid), so
files of containers and images show their owners as the container sees them.

Examples:
  nook unshare cat /proc/self/uid_map
  nook unshare rm -rf ~/.local/share/nook/containers/OLD
  nook unshare               # a shell; exit to leave
`,
    )
    .action(async (command: string[], options: UnshareOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions & UnshareOptions>();
      const { spawnInUserNamespace } = await import('../../idmap/userns.js');
      const { computeIdMapping } = await import('../../idmap/mapping.js');
      const mapping = await computeIdMapping();
      for (const warning of mapping.warnings) process.stderr.write(`Warning: ${warning}\n`);
      const args = command.length ? command : [process.env.SHELL || '/bin/sh'];
      const handle = await spawnInUserNamespace(args, {
        mapping,
        stdio: 'inherit',
        mountNamespace: options.mount,
        env: { ...process.env, NOOK_UNSHARE: '1' },
        ...(globals.trace ? { onTrace: (text: string) => process.stderr.write(`trace: ${text}\n`) } : {}),
      });
      // The terminal's signals reach the command directly; nook only waits.
      const ignore = () => {};
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT', 'SIGTSTP'];
      for (const signal of signals) process.on(signal, ignore);
      try {
        await handle.started;
        const exit = await handle.exit;
        process.exitCode = exit.code;
      } finally {
        for (const signal of signals) process.off(signal, ignore);
      }
    });
}
