/**
 * A network namespace made the way a container's is, without the executor:
 * `unshare -Urn --fork sleep` gives a process in a new user and network
 * namespace. The unshare process plays the executor's monitor: it holds the
 * write end of the lifeline (a pipe made with pipe2, as `nook run` makes it;
 * its child inherits a copy too), and the test keeps the read end to hand to
 * attachNetwork, which closes it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { linuxSyscalls } from '../../src/syscalls/syscalls.js';

export interface NamespaceHolder {
  /** the unshare process: the "monitor" */
  monitor: ChildProcess;
  /** the process inside the new namespaces: the "container" */
  pid: number;
  /** nook's end of the lifeline (the pipe's read end), for attachNetwork, which closes it */
  lifeline: number;
  dir: string;
  /** kills both processes (SIGKILL) and removes the directory */
  destroy(): void;
}

export function requireTool(path: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: install it (Debian: apt install ${path.endsWith('busybox') ? 'busybox-static' : path.split('/').pop()})`);
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function makeNamespaceHolder(seconds = 120): Promise<NamespaceHolder> {
  const [readEnd, writeEnd] = (await linuxSyscalls()).pipe();
  // lo comes up at once, as the executor's loopback-up op does for a container's new network namespace.
  const monitor = spawn('unshare', ['-Urn', '--fork', 'sh', '-c', `ip link set lo up && exec sleep ${seconds}`], { stdio: ['ignore', 'inherit', 'inherit', writeEnd] });
  closeSync(writeEnd);
  const monitorPid = monitor.pid;
  if (monitorPid === undefined) throw new Error('unshare did not start');
  let pid = 0;
  for (let i = 0; i < 200 && !pid; i++) {
    try {
      pid = Number(readFileSync(`/proc/${monitorPid}/task/${monitorPid}/children`, 'utf8').trim().split(' ')[0]) || 0;
      // the child exists before it has unshared; wait until its net namespace differs from ours
      if (pid && [readLink('/proc/self/ns/net'), ''].includes(readLink(`/proc/${pid}/ns/net`))) pid = 0;
    } catch {
      pid = 0;
    }
    if (!pid) await sleep(10);
  }
  if (!pid) throw new Error('the namespace holder did not start');
  const dir = mkdtempSync(join(tmpdir(), 'nook-nettest-'));
  const lifeline = readEnd;
  return {
    monitor,
    pid,
    lifeline,
    dir,
    destroy() {
      for (const p of [pid, monitorPid]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readLink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** Runs a command inside the holder's user and network namespaces. */
export function inNamespace(pid: number, command: string[], options: { stdio?: 'pipe' | 'ignore' } = {}): ChildProcess {
  return spawn('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', ...command], { stdio: options.stdio ?? 'pipe' });
}

/** Resolves with the process's stdout when it exits. */
export function output(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** State letter of /proc/PID/stat, or null when the process is gone (a zombie counts as gone). */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' ? null : state;
  } catch {
    return null;
  }
}

export async function waitGone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (processState(pid) === null) return true;
    await sleep(20);
  }
  return processState(pid) === null;
}

/** Every slirp4netns of this user whose command line names `pid` as its target. */
export function slirpProcessesFor(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('slirp4netns') && argv.includes(String(pid)) && processState(Number(entry)) !== null) found.push(Number(entry));
    } catch {
      // raced with an exit
    }
  }
  return found;
}

// ---- nook itself, through its CLI, with a private store

const here = fileURLToPath(new URL('.', import.meta.url));
export const nookCli = resolve(here, '../../src/cli/main.cjs');
const ARCHIVE = process.env.NOOK_TEST_BUSYBOX_ARCHIVE ?? resolve(here, '../../../test/fixtures/cache/images/busybox-docker-archive.tar');

export interface NookEnv {
  root: string;
  runRoot: string;
  nook(args: string[], options?: { reject?: boolean }): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
}

/** One store per test: a private root and run root, with the busybox image loaded. */
export async function nookEnv(t: ExecutionContext): Promise<NookEnv> {
  if (!existsSync(ARCHIVE)) throw new Error(`${ARCHIVE} is missing: build the fixtures (node dist/test/fixtures/build-images.js) or run through test/harness/run.sh`);
  const base = mkdtempSync(join(tmpdir(), 'nook-netrun-'));
  const root = join(base, 'root');
  const runRoot = join(base, 'run');
  const nook: NookEnv['nook'] = async (args, options = {}) => {
    const r = await execa(process.execPath, [nookCli, '--root', root, '--runroot', runRoot, ...args], { reject: false, timeout: 60_000, stdin: 'ignore', stripFinalNewline: false });
    if (options.reject !== false && r.exitCode !== 0) throw new Error(`nook ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  t.teardown(async () => {
    const ps = await nook(['ps', '-a', '-q'], { reject: false });
    const ids = ps.stdout.split('\n').filter(Boolean);
    if (ids.length) await nook(['rm', '-f', ...ids], { reject: false });
    await execa(process.execPath, [nookCli, '--root', root, '--runroot', runRoot, 'unshare', 'rm', '-rf', root], { reject: false });
    rmSync(base, { recursive: true, force: true });
  });
  await nook(['load', '-q', '-i', ARCHIVE]);
  return { root, runRoot, nook };
}

