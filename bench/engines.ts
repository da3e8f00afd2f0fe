/**
 * The two container engines under test, driven through their command lines
 * the way a user drives them, each with private stores in the suite's work
 * directory so that nothing of the user's own images or containers is used
 * or touched.
 *
 * nook: one store (--root/--runroot); the storage driver is chosen per
 * container with `run --storage-driver`.
 * podman: one store per storage driver (a store belongs to one driver), with
 * `--runtime runc` (crun refuses cgroup v1 hybrid hosts), cgroupfs, file
 * events, and its own containers.conf and storage.conf so that the user's
 * configuration does not change what is measured.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runChecked, runCommand, type Command } from './command.js';
import { paths } from './checkout.js';

export type StorageDriver = 'overlay' | 'fuse-overlayfs' | 'vfs';
export const STORAGE_DRIVERS: readonly StorageDriver[] = ['overlay', 'fuse-overlayfs', 'vfs'];

export type EngineName = 'nook' | 'podman';

export interface ContainerSpec {
  image: string;
  argv: string[];
  driver: StorageDriver;
  /** --network; undefined: the engine's default (slirp4netns for both here) */
  network?: string;
  rm?: boolean;
  detach?: boolean;
  name?: string;
  publish?: string[];
  tmpfs?: string[];
  volumes?: string[];
}

export interface Engine {
  readonly name: EngineName;
  /** `ENGINE GLOBAL-FLAGS ARGS...` against the store used for this storage driver */
  command(driver: StorageDriver, args: string[]): Command;
  run(spec: ContainerSpec): Command;
  exec(driver: StorageDriver, container: string, argv: string[]): Command;
  load(driver: StorageDriver, archive: string): Command;
  pull(driver: StorageDriver, ref: string, registry: { certDir: string; creds: string }): Command;
  /** loads the archive into the store of this driver unless it was already */
  ensureImage(driver: StorageDriver, archive: string): Promise<void>;
  /** the host pid of the container's process */
  containerPid(driver: StorageDriver, container: string): Promise<number>;
  /** removes every container of every store used, then the stores */
  destroy(): Promise<void>;
}

/** The environment both engines run with: the measuring user's, a private runtime directory. */
export function engineEnvironment(runtimeDir: string): NodeJS.ProcessEnv {
  mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
  const keep = ['HOME', 'USER', 'LOGNAME', 'PATH', 'LANG', 'TERM', 'SHELL'];
  const env: NodeJS.ProcessEnv = {};
  for (const name of keep) if (process.env[name] !== undefined) env[name] = process.env[name];
  env.XDG_RUNTIME_DIR = runtimeDir;
  return env;
}

/** rm -rf of a directory holding files of the user's subordinate ids, from a user namespace that maps them. */
export async function removeTree(dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const removed = await runCommand({ file: 'unshare', args: ['--map-root-user', '--map-auto', 'rm', '-rf', dir], env });
  if (removed.exitCode !== 0) await runCommand({ file: 'rm', args: ['-rf', dir], env });
}

function runFlags(spec: ContainerSpec): string[] {
  const flags: string[] = [];
  if (spec.rm) flags.push('--rm');
  if (spec.detach) flags.push('-d');
  if (spec.name) flags.push('--name', spec.name);
  if (spec.network !== undefined) flags.push('--network', spec.network);
  for (const p of spec.publish ?? []) flags.push('-p', p);
  for (const t of spec.tmpfs ?? []) flags.push('--tmpfs', t);
  for (const v of spec.volumes ?? []) flags.push('-v', v);
  return flags;
}

async function pidFromInspect(command: Command, container: string): Promise<number> {
  const result = await runChecked(command);
  const parsed = JSON.parse(result.stdout) as { State?: { Pid?: number } }[];
  const pid = parsed[0]?.State?.Pid;
  if (!pid) throw new Error(`no pid for container ${container} in its inspect output`);
  return pid;
}

export class NookEngine implements Engine {
  readonly name = 'nook';
  private readonly root: string;
  private readonly runroot: string;
  private loaded = new Set<string>();

  constructor(
    private readonly base: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.root = join(base, 'root');
    this.runroot = join(base, 'run');
  }

  command(_driver: StorageDriver, args: string[]): Command {
    return { file: process.execPath, args: [paths.nookMain, '--root', this.root, '--runroot', this.runroot, ...args], env: this.env };
  }

  run(spec: ContainerSpec): Command {
    return this.command(spec.driver, ['run', ...runFlags(spec), '--storage-driver', spec.driver, spec.image, ...spec.argv]);
  }

  exec(driver: StorageDriver, container: string, argv: string[]): Command {
    return this.command(driver, ['exec', container, ...argv]);
  }

  load(driver: StorageDriver, archive: string): Command {
    return this.command(driver, ['load', '-q', '-i', archive]);
  }

  pull(driver: StorageDriver, ref: string, registry: { certDir: string; creds: string }): Command {
    return this.command(driver, ['pull', '-q', '--creds', registry.creds, '--cert-dir', registry.certDir, ref]);
  }

  async ensureImage(driver: StorageDriver, archive: string): Promise<void> {
    if (this.loaded.has(archive)) return; // one store for every driver
    await runChecked(this.load(driver, archive));
    this.loaded.add(archive);
  }

  containerPid(driver: StorageDriver, container: string): Promise<number> {
    return pidFromInspect(this.command(driver, ['inspect', container]), container);
  }

  async destroy(): Promise<void> {
    const ids = await runCommand(this.command('overlay', ['ps', '-aq']));
    const list = ids.stdout.split('\n').filter(Boolean);
    if (list.length > 0) await runCommand(this.command('overlay', ['rm', '-f', ...list]));
    await removeTree(this.base, this.env);
  }
}

export class PodmanEngine implements Engine {
  readonly name = 'podman';
  private readonly env: NodeJS.ProcessEnv;
  private readonly used = new Set<StorageDriver>();
  private loaded = new Set<string>();

  /**
   * base: the stores; runBase: their run roots, which podman wants short
   * (at most 50 characters), so a short directory of the runtime directory.
   */
  constructor(
    private readonly base: string,
    env: NodeJS.ProcessEnv,
    private readonly runBase: string,
  ) {
    mkdirSync(base, { recursive: true });
    const containersConf = join(base, 'containers.conf');
    const storageConf = join(base, 'storage.conf');
    writeFileSync(containersConf, '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
    writeFileSync(storageConf, '[storage]\ndriver = "overlay"\n');
    this.env = { ...env, CONTAINERS_CONF: containersConf, CONTAINERS_STORAGE_CONF: storageConf };
  }

  private globals(driver: StorageDriver): string[] {
    const store = join(this.base, driver);
    const flags = ['--root', join(store, 'root'), '--runroot', join(this.runBase, driver.slice(0, 1)), '--tmpdir', join(store, 'tmp')];
    flags.push('--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file');
    if (driver === 'vfs') flags.push('--storage-driver', 'vfs');
    else flags.push('--storage-driver', 'overlay');
    if (driver === 'fuse-overlayfs') flags.push('--storage-opt', 'overlay.mount_program=/usr/bin/fuse-overlayfs');
    return flags;
  }

  command(driver: StorageDriver, args: string[]): Command {
    this.used.add(driver);
    return { file: 'podman', args: [...this.globals(driver), ...args], env: this.env };
  }

  run(spec: ContainerSpec): Command {
    return this.command(spec.driver, ['run', ...runFlags(spec), spec.image, ...spec.argv]);
  }

  exec(driver: StorageDriver, container: string, argv: string[]): Command {
    return this.command(driver, ['exec', container, ...argv]);
  }

  load(driver: StorageDriver, archive: string): Command {
    return this.command(driver, ['load', '-q', '-i', archive]);
  }

  pull(driver: StorageDriver, ref: string, registry: { certDir: string; creds: string }): Command {
    return this.command(driver, ['pull', '-q', '--creds', registry.creds, '--cert-dir', registry.certDir, ref]);
  }

  async ensureImage(driver: StorageDriver, archive: string): Promise<void> {
    const key = `${driver} ${archive}`;
    if (this.loaded.has(key)) return;
    await runChecked(this.load(driver, archive));
    this.loaded.add(key);
  }

  containerPid(driver: StorageDriver, container: string): Promise<number> {
    return pidFromInspect(this.command(driver, ['inspect', container]), container);
  }

  async destroy(): Promise<void> {
    for (const driver of this.used) {
      await runCommand(this.command(driver, ['rm', '-fa']));
      await stopPodmanPause(join(this.base, driver, 'tmp'), this.env);
    }
    await removeTree(this.base, this.env);
    await removeTree(this.runBase, this.env);
  }
}

/**
 * Rootless podman keeps a "pause" process (it holds the user namespace its
 * commands join), its pid in pause.pid of its --tmpdir. It belongs to no
 * container and is ended with the store.
 */
async function stopPodmanPause(tmpDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const pidFile = join(tmpDir, 'pause.pid');
  await runCommand({ file: 'sh', args: ['-c', 'test -f "$1" && kill "$(cat "$1")"', 'sh', pidFile], env });
}
