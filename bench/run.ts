/**
 * nook's benchmark suite: nook against podman and the kernel floors, side by
 * side, in one run. `npm run bench` (builds first); options in options.ts;
 * how to read the results in docs/performance.md.
 *
 * Started as root it prepares the machine and measures as an unprivileged
 * user (root.ts); started as a user it measures as that user. Either way the
 * measuring process is `measure()` below: it builds nothing it cannot, runs
 * each group, prints the table and the goals, writes the JSON, and removes
 * every container, store and helper it started.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { cpus, hostname, loadavg, release, totalmem, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCommand } from './command.js';
import { paths } from './checkout.js';
import type { BenchContext } from './context.js';
import { engineEnvironment, NookEngine, PodmanEngine } from './engines.js';
import { benchExec } from './groups/exec.js';
import { benchFs } from './groups/fs.js';
import { benchMemory } from './groups/memory.js';
import { benchNetwork } from './groups/network.js';
import { benchProfile } from './groups/profile.js';
import { benchLoad, benchPull } from './groups/pull.js';
import { benchStart } from './groups/start.js';
import { prepareImages } from './images.js';
import { DEBIAN_GROUPS, HelpRequested, parseOptions, type BenchOptions } from './options.js';
import { errorRow, renderGoals, renderTable, type GroupName, type Results, type Row } from './report.js';
import { runAsRoot } from './root.js';
import { requirePrograms, WORKER_PROGRAMS } from './tools.js';
import { defaultFixturesDir } from '../test/fixtures/build-images.js';

const GROUP_RUNNERS: Record<GroupName, (ctx: BenchContext) => Promise<Row[]>> = {
  start: benchStart,
  exec: benchExec,
  pull: benchPull,
  load: benchLoad,
  memory: benchMemory,
  fs: benchFs,
  network: benchNetwork,
  profile: benchProfile,
};

const TMPFS_MAGIC = 0x01021994;

/** As a user: the work directory and what it is. A tmpfs when /dev/shm is one, else $TMPDIR. */
async function userWorkDir(fs: string | undefined): Promise<{ dir: string; description: string; temporary: boolean }> {
  if (fs && fs !== 'tmpfs') {
    if (fs === 'loop') throw new Error('--fs loop needs root (it mounts a file system); as a user give a directory or tmpfs');
    await mkdir(fs, { recursive: true });
    const dir = await mkdtemp(join(fs, 'nook-bench.'));
    return { dir, description: describeFs(dir), temporary: true };
  }
  const shm = '/dev/shm';
  const base = existsSync(shm) && statfsSync(shm).type === TMPFS_MAGIC ? shm : tmpdir();
  const dir = await mkdtemp(join(base, `nook-bench-${process.getuid?.()}.`));
  return { dir, description: describeFs(dir), temporary: true };
}

function describeFs(dir: string): string {
  const st = statfsSync(dir);
  const type = st.type === TMPFS_MAGIC ? 'tmpfs' : st.type === 0xef53 ? 'ext2/3/4' : `file system type 0x${st.type.toString(16)}`;
  const note = st.type === 0xef53 ? ' (not made by the suite: a journal-less or aged ext4 makes file-heavy figures drift; run as root for a fresh one)' : '';
  return `${dir}, ${type}${note}`;
}

/** The first line of a command's output (or the first that matches `pick`), "unknown" if it fails. */
function tryRun(file: string, args: string[], pick?: RegExp): string {
  try {
    const lines = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n');
    return (pick ? lines.find((line) => pick.test(line)) : undefined) ?? lines[0]!;
  } catch {
    return 'unknown';
  }
}

function versions(): Record<string, string> {
  const commit = tryRun('git', ['-c', 'safe.directory=*', '-C', paths.checkout, 'rev-parse', '--short', 'HEAD']);
  const dirty = tryRun('git', ['-c', 'safe.directory=*', '-C', paths.checkout, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'helpers']);
  return {
    nook: `${commit}${dirty && dirty !== 'unknown' ? ' (with uncommitted changes in src/ or helpers/)' : ''}`,
    node: process.version,
    podman: tryRun('podman', ['--version']),
    runc: tryRun('runc', ['--version']),
    conmon: tryRun('conmon', ['--version']),
    slirp4netns: tryRun('slirp4netns', ['--version']),
    'fuse-overlayfs': tryRun('fuse-overlayfs', ['--version'], /^fuse-overlayfs/),
  };
}

function machine(loadAverageAtStart: number[]): Record<string, unknown> {
  let os = 'unknown';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // no os-release
  }
  return {
    hostname: hostname(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    os,
    cgroups: existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : existsSync('/sys/fs/cgroup/unified') ? 'hybrid (v1 + v2 without controllers)' : 'v1',
    loadAverageAtStart,
    loadAverageAtEnd: loadavg(),
  };
}

/** The measuring process. */
async function measure(options: BenchOptions): Promise<number> {
  const started = Date.now();
  const loadAtStart = loadavg();
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  await requirePrograms(WORKER_PROGRAMS);
  if (!existsSync(paths.nookMain)) throw new Error(`${paths.nookMain} is missing: run npm run build first (npm run bench does)`);
  const needDebian = options.groups.some((g) => DEBIAN_GROUPS.includes(g));
  const images = await prepareImages({ canBuildDebian: false, needDebian, log });

  const work = options.worker ? { dir: options.worker.work, description: options.worker.fsDescription, temporary: false } : await userWorkDir(options.fs);
  log(`work directory: ${work.description}`);
  const load = loadavg()[0]!;
  if (load > 0.5) log(`warning: load average ${load.toFixed(2)}: other work on this machine will show in the figures`);

  const runtimeDir = join(work.dir, 'xdg');
  const env = engineEnvironment(runtimeDir);
  const ctx: BenchContext = {
    work: work.dir,
    runtimeDir,
    env,
    nook: new NookEngine(join(work.dir, 'nook'), env),
    podman: new PodmanEngine(join(work.dir, 'podman'), env, join(runtimeDir, 'pm')),
    busybox: images.busybox,
    busyboxRootfsTar: images.busyboxRootfsTar,
    debian: images.debian,
    fixturesDir: defaultFixturesDir,
    drivers: options.drivers,
    runs: options.runs,
    scope: { ...(options.worker?.cgroup ? { cgroup: options.worker.cgroup } : {}), uid: process.getuid?.() ?? 0 },
    log,
  };

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await ctx.nook.destroy().catch((error: unknown) => log(`cleanup (nook): ${String(error)}`));
    await ctx.podman.destroy().catch((error: unknown) => log(`cleanup (podman): ${String(error)}`));
    if (work.temporary && !options.keep) await runCommand({ file: 'unshare', args: ['--map-root-user', '--map-auto', 'rm', '-rf', work.dir], env });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: removing containers and stores`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  try {
    for (const group of options.groups) {
      const groupStarted = Date.now();
      try {
        rows.push(...(await GROUP_RUNNERS[group](ctx)));
      } catch (error) {
        log(`${group}: ${error instanceof Error ? error.message : String(error)}`);
        rows.push(errorRow(group, 'failed', error));
      }
      log(`${group}: done in ${((Date.now() - groupStarted) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cleanup();
  }
  if (options.worker?.extraRows) rows.push(...(JSON.parse(readFileSync(options.worker.extraRows, 'utf8')) as Row[]));

  const notes = [
    `file-heavy figures (pull, load, fs) and every store: ${work.description}`,
    'times are wall times of the whole command, from spawn to exit; figures are median (min-max)',
    'nook/podman: ratio of medians; for fs the goal is the host time / the container time',
  ];
  if (images.debian) notes.push(`debian image: debootstrap --variant=minbase bookworm from ${images.debian.mirror}, ${images.debian.treeEntries} entries in the first layer, + a layer that deletes and adds files`);
  const results: Results = {
    suite: 'nook bench',
    date: new Date().toISOString(),
    machine: machine(loadAtStart),
    versions: versions(),
    filesystem: work.description,
    options: { quick: options.quick, groups: options.groups, runs: options.runs, drivers: options.drivers },
    notes,
    rows,
    elapsed: (Date.now() - started) / 1000,
  };
  const jsonPath = options.json ?? join(paths.results, 'latest.json');
  mkdirSync(dirname(jsonPath), { recursive: true });
  await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`);

  process.stdout.write(`${renderTable(rows)}\n\n`);
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
  const goals = renderGoals(rows);
  process.stdout.write(`\n${goals.text}\n`);
  if (!options.worker) log(`results: ${jsonPath}`);
  return rows.some((row) => row.error) ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (!options.worker && process.getuid?.() === 0) return runAsRoot(options);
  return measure(options);
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.message}\n`);
      return;
    }
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  },
);
