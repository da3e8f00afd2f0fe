/**
 * The part of the suite that runs as root: everything the measuring user
 * cannot do, then the measurements themselves as that user.
 *
 *  1. the programs (apt-get line if any is missing), the images (debootstrap);
 *  2. the unprivileged user with subordinate ids, /dev/fuse and /dev/net/tun
 *     usable, by the test harness's own functions (test/harness/test-users.sh);
 *  3. a fresh file system for the work: a journaled ext4 on a loop file (the
 *     root file system of the development machines is ext4 without a journal,
 *     where creating files gets slower and slower after large deletes), or a
 *     tmpfs;
 *  4. a cgroup of its own (v2 hierarchy, also on hybrid hosts) holding the
 *     measuring process: the memory group counts only processes in it, and
 *     whatever is left running at the end is killed with it;
 *  5. the measuring process, as the user, with a clean environment;
 *  6. cleaning up whatever happens: the cgroup's processes, the mount, the
 *     loop device and its file, the work directory.
 */
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readFileSync, rmdirSync, writeFileSync, readdirSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runChecked, runCommand, sleep } from './command.js';
import { paths } from './checkout.js';
import { prepareImages } from './images.js';
import { DEBIAN_GROUPS, forwardedArgs, type BenchOptions } from './options.js';
import { recordStartTimelines } from './timeline.js';
import { requirePrograms, ROOT_PROGRAMS, WORKER_PROGRAMS } from './tools.js';

/** Size of the loop file system: two stores of the Debian image per engine at most, the trees, the registry. */
const LOOP_SIZE = '8G';

interface UserIds {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function lookupUser(name: string): UserIds {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  if (!line) throw new Error(`no user ${name} in /etc/passwd`);
  const fields = line.split(':');
  return { name, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
}

async function prepareUser(name: string): Promise<UserIds> {
  // the harness's functions: a home, 65536 subordinate ids, usable /dev/fuse and /dev/net/tun
  await runChecked({
    file: 'bash',
    args: ['-c', 'set -euo pipefail; source "$0"; prepare_test_users "$1" "$2"; prepare_devices', paths.testUsersScript, name, `${name}2`],
  });
  return lookupUser(name);
}

/** What the user must read: the build, the dependencies, the images (as the harness does it). */
async function makeReadable(): Promise<void> {
  for (const dir of ['dist', 'node_modules', 'bench/cache', 'test/fixtures/cache', 'helpers']) {
    const path = join(paths.checkout, dir);
    if (!existsSync(path)) continue;
    await runChecked({ file: 'find', args: [path, '(', '-type', 'd', '!', '-perm', '-o=rx', ')', '-o', '(', '-type', 'f', '!', '-perm', '-o=r', ')', '-exec', 'chmod', 'a+rX', '{}', '+'] });
  }
}

function asUser(user: UserIds, argv: string[]): string[] {
  const env = [
    `HOME=${user.home}`, `USER=${user.name}`, `LOGNAME=${user.name}`, 'SHELL=/bin/bash', 'LANG=C.UTF-8',
    `PATH=${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    ...(process.env.TERM ? [`TERM=${process.env.TERM}`] : []),
  ];
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--inh-caps=-all', '--', 'env', '-i', ...env, ...argv];
}

interface WorkFs {
  /** the mount point, owned by the user */
  dir: string;
  description: string;
  release(): Promise<void>;
}

async function mountWorkFs(kind: string, base: string, user: UserIds): Promise<WorkFs> {
  const dir = join(base, 'fs');
  await mkdir(dir, { recursive: true });
  const releases: (() => Promise<void>)[] = [];
  const release = async () => {
    for (const step of releases.reverse()) await step().catch((error: unknown) => process.stderr.write(`bench: cleanup: ${String(error)}\n`));
  };
  try {
    let description: string;
    if (kind === 'tmpfs') {
      await runChecked({ file: 'mount', args: ['-t', 'tmpfs', '-o', `size=${LOOP_SIZE},mode=0755`, 'tmpfs', dir] });
      releases.push(() => unmount(dir));
      description = `a fresh tmpfs (${LOOP_SIZE}) at ${dir}`;
    } else if (kind === 'loop') {
      const image = join('/var/tmp', `${base.split('/').pop()}.ext4`);
      await runChecked({ file: 'fallocate', args: ['-l', LOOP_SIZE, image] });
      releases.push(() => rm(image, { force: true }));
      // no lazy initialisation: it would write inode tables in the background during the measurements
      await runChecked({ file: 'mkfs.ext4', args: ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image] });
      const device = (await runChecked({ file: 'losetup', args: ['--find', '--show', '--direct-io=on', image] })).stdout.trim();
      releases.push(async () => void (await runCommand({ file: 'losetup', args: ['-d', device] })));
      await runChecked({ file: 'mount', args: [device, dir] });
      releases.push(() => unmount(dir));
      description = `a fresh journaled ext4 (${LOOP_SIZE} loop file ${image} on ${device}, direct I/O) mounted at ${dir}`;
    } else {
      throw new Error(`--fs ${kind}: as root, use loop or tmpfs`);
    }
    await chmod(dir, 0o755);
    await runChecked({ file: 'chown', args: [`${user.uid}:${user.gid}`, dir] });
    return { dir, description, release };
  } catch (error) {
    await release();
    throw error;
  }
}

async function unmount(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const result = await runCommand({ file: 'umount', args: [dir] });
    if (result.exitCode === 0) return;
    await sleep(500);
  }
  await runChecked({ file: 'umount', args: ['--lazy', dir] });
}

interface Cgroup {
  path: string;
  killAndRemove(): Promise<void>;
}

function cgroupProcs(path: string): number[] {
  const pids: number[] = [];
  const walk = (dir: string) => {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.push(Number(line));
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
    } catch {
      // gone
    }
  };
  walk(path);
  return pids;
}

/** A cgroup in the v2 hierarchy (the unified one of a hybrid host), or undefined when there is none. */
function createCgroup(): Cgroup | undefined {
  const base = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : undefined;
  if (!base) return undefined;
  const path = join(base, `nook-bench.${process.pid}`);
  try {
    mkdirSync(path);
  } catch {
    return undefined;
  }
  return {
    path,
    killAndRemove: async () => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const pids = cgroupProcs(path);
        if (pids.length === 0) break;
        if (attempt === 0) {
          const names = pids.map((pid) => {
            try {
              return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 120)}`;
            } catch {
              return String(pid);
            }
          });
          process.stderr.write(`bench: ending ${pids.length} process(es) left in ${path}: ${names.join('; ')}\n`);
        }
        if (existsSync(join(path, 'cgroup.kill'))) writeFileSync(join(path, 'cgroup.kill'), '1');
        else for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await sleep(100);
      }
      const remove = (dir: string) => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(join(dir, entry.name));
        rmdirSync(dir);
      };
      try {
        remove(path);
      } catch (error) {
        process.stderr.write(`bench: cannot remove ${path}: ${String(error)}\n`);
      }
    },
  };
}

/**
 * The start's timeline from perf's scheduler events (root only), written for
 * the measuring process to add to the profile group; undefined when perf
 * cannot (the reason is logged).
 */
async function timelineAsRoot(options: BenchOptions, user: UserIds, work: string, log: (line: string) => void): Promise<string | undefined> {
  log('profile: start timeline with perf (as root, the starts as the user)');
  const dir = join(work, 'timeline');
  const mkdirAsUser = asUser(user, ['mkdir', '-p', join(dir, 'store')]);
  await runChecked({ file: mkdirAsUser[0]!, args: mkdirAsUser.slice(1) });
  const fixtures = await prepareImages({ canBuildDebian: false, needDebian: false, log });
  const result = await recordStartTimelines({
    dir: join(dir, 'store'),
    runs: Math.min(options.runs.latency, 10),
    nook: (args) => [process.execPath, paths.nookMain, '--root', join(dir, 'store/root'), '--runroot', join(dir, 'store/run'), ...args],
    asUser: (argv) => asUser(user, argv),
    busyboxArchive: fixtures.busybox.archive,
  }).catch((error: unknown) => ({ skipped: error instanceof Error ? error.message : String(error) }));
  if ('skipped' in result) {
    log(`profile: no timeline: ${result.skipped}`);
    return undefined;
  }
  const file = join(work, 'timeline.json');
  writeFileSync(file, JSON.stringify(result.rows));
  return file;
}

/** Runs the whole suite from root; returns the exit status. */
export async function runAsRoot(options: BenchOptions): Promise<number> {
  await requirePrograms([...WORKER_PROGRAMS, ...ROOT_PROGRAMS]);
  if (!existsSync(paths.nookMain)) throw new Error(`${paths.nookMain} is missing: run npm run build first (npm run bench does)`);
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  await prepareImages({ canBuildDebian: true, needDebian: options.groups.some((g) => DEBIAN_GROUPS.includes(g)), log });
  const user = await prepareUser(options.user);
  await makeReadable();
  const check = asUser(user, ['test', '-r', paths.nookMain, '-a', '-r', paths.benchMain]);
  const reachable = await runCommand({ file: check[0]!, args: check.slice(1) });
  if (reachable.exitCode !== 0) throw new Error(`user ${user.name} cannot read ${paths.checkout}: put the checkout where other users can read it`);

  const base = await mkdtemp('/tmp/nook-bench.');
  await chmod(base, 0o755);
  let fs: WorkFs | undefined;
  let cgroup: Cgroup | undefined;
  let status = 1;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true; // the measuring process gets the terminal's signal too; clean up after it
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    fs = await mountWorkFs(options.fs ?? 'loop', base, user);
    log(`work file system: ${fs.description}`);
    cgroup = createCgroup();
    if (!cgroup) log('no cgroup v2 hierarchy: the memory group counts every process of the user');
    const extraRows = options.groups.includes('profile') ? await timelineAsRoot(options, user, fs.dir, log) : undefined;
    const results = join(fs.dir, 'results.json');
    const argv = asUser(user, [
      process.execPath, paths.benchMain, '--worker', '--work', fs.dir, '--fs-description', fs.description, '--json', results,
      ...(cgroup ? ['--cgroup', cgroup.path] : []), ...(extraRows ? ['--extra-rows', extraRows] : []), ...forwardedArgs(options),
    ]);
    const command = cgroup ? ['bash', '-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'bench-cgroup', cgroup.path, ...argv] : argv;
    const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
    process.on('SIGTERM', () => child.kill('SIGTERM'));
    status = await new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1))));
    if (existsSync(results)) {
      const target = options.json ?? join(paths.results, 'latest.json');
      await mkdir(dirname(target), { recursive: true });
      await copyFile(results, target);
      log(`results: ${target}`);
    }
  } finally {
    await cgroup?.killAndRemove();
    if (fs && options.keep) log(`kept ${fs.dir} (unmount it and remove ${base} when done)`);
    else {
      await fs?.release();
      await rm(base, { recursive: true, force: true });
    }
    process.off('SIGINT', onSignal);
  }
  if (interrupted && status === 0) status = 130;
  return status;
}
