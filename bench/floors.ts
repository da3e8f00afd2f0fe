/**
 * The kernel floors a container start and an exec are compared with: what
 * the namespaces alone cost (`unshare -U -r -m -p -f true`), and what a
 * minimal OCI runtime costs (runc, rootless, on a bundle of the busybox
 * image, without storage drivers, image store or network helpers).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked, runCommand, type Command } from './command.js';

export function unshareFloor(env: NodeJS.ProcessEnv): Command {
  return { file: 'unshare', args: ['-U', '-r', '-m', '-p', '-f', 'true'], env };
}

export interface RuncBundle {
  /** `runc run` of the bundle's command (true), removed at exit */
  run(id: string): Command;
  /** starts `sleep` detached under this id */
  start(id: string): Promise<void>;
  exec(id: string, argv: string[]): Command;
  remove(id: string): Promise<void>;
}

/**
 * A rootless runc bundle (`runc spec --rootless`) with the busybox root file
 * system, its own network namespace added (as `--network none` has), no
 * terminal.
 */
export async function prepareRuncBundle(dir: string, rootfsTar: string, env: NodeJS.ProcessEnv): Promise<RuncBundle> {
  const bundle = join(dir, 'bundle');
  const state = join(dir, 'state');
  await mkdir(join(bundle, 'rootfs'), { recursive: true });
  await mkdir(state, { recursive: true, mode: 0o700 });
  await runChecked({ file: 'tar', args: ['-xf', rootfsTar, '-C', join(bundle, 'rootfs')], env });
  await runChecked({ file: 'runc', args: ['spec', '--rootless', '--bundle', bundle], env });
  const configPath = join(bundle, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as {
    process: { terminal: boolean; args: string[] };
    linux: { namespaces: { type: string }[] };
  };
  config.process.terminal = false;
  if (!config.linux.namespaces.some((ns) => ns.type === 'network')) config.linux.namespaces.push({ type: 'network' });
  const write = (args: string[]) => writeFile(configPath, JSON.stringify({ ...config, process: { ...config.process, args } }, null, 2));
  await write(['true']);
  const runc = (args: string[]): Command => ({ file: 'runc', args: ['--root', state, ...args], env });
  return {
    run: (id) => runc(['run', '--bundle', bundle, id]),
    start: async (id) => {
      await write(['sleep', '100000']);
      try {
        await runChecked(runc(['run', '--detach', '--bundle', bundle, id]));
      } finally {
        await write(['true']);
      }
    },
    exec: (id, argv) => runc(['exec', id, ...argv]),
    remove: async (id) => {
      await runCommand(runc(['delete', '--force', id]));
    },
  };
}
