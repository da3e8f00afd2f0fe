/**
 * A private nook store per test: its own --root and --runroot, and its own
 * HOME and XDG directories so that nothing a test does (images, containers,
 * `nook login` credentials) reaches the user's real ~/.local/share/nook or
 * another test running at the same time.
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempStore {
  /** the directory holding everything below */
  dir: string;
  /** nook --root */
  root: string;
  /** nook --runroot (short, 0700: it holds sockets) */
  runroot: string;
  /** a home directory for nook's config and credentials */
  home: string;
  /** variables runNook sets for this store: HOME and XDG_{CONFIG,DATA,CACHE}_HOME */
  env: Record<string, string>;
  /** removes the store, including files owned by subordinate ids */
  cleanup(): Promise<void>;
}

/** What tempStore needs of an ava ExecutionContext (typed loosely to keep ava out of this module). */
interface Teardownable {
  teardown(fn: () => Promise<void> | void): void;
}

/**
 * Creates a store under $TMPDIR (short paths: unix sockets live in the runroot).
 * Pass the test's `t` to have it removed when the test ends.
 */
export async function tempStore(t?: Teardownable): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), 'nook-t-'));
  const root = join(dir, 'root');
  const runroot = join(dir, 'run');
  const home = join(dir, 'home');
  for (const path of [root, runroot, home]) await mkdir(path, { mode: 0o700 });
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_CACHE_HOME: join(home, '.cache'),
  };
  const store: TempStore = { dir, root, runroot, home, env, cleanup: () => removeTree(dir) };
  t?.teardown(() => store.cleanup());
  return store;
}

/**
 * rm -rf that also works on what containers left: files owned by subordinate
 * ids, or directories without write permission. Those are removed from a user
 * namespace where the caller is root and its subordinate ids are mapped
 * (util-linux unshare, through newuidmap), the way `podman unshare rm` does.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw error;
  }
  const viaUserNamespace = await execa('unshare', ['--map-root-user', '--map-auto', 'rm', '-rf', '--', path], { reject: false });
  if (viaUserNamespace.exitCode !== 0) {
    // No subordinate ids (or no newuidmap): root in a namespace of our own still overrides modes.
    const plain = await execa('unshare', ['--map-root-user', 'rm', '-rf', '--', path], { reject: false });
    if (plain.exitCode !== 0) {
      throw new Error(`cannot remove test store ${path}: ${viaUserNamespace.stderr || plain.stderr}`);
    }
  }
}
