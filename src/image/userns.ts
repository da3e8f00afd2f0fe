/**
 * Running a helper command as root of a user namespace that has the user's
 * full id mapping (their own uid as 0, the subordinate ids from /etc/subuid
 * and /etc/subgid as 1..N), as podman does for `podman unshare`. The store uses
 * it to extract layers (so that chown to a file's owner lands on the host id
 * that owner maps to) and to delete layer directories (whose files belong to
 * subordinate ids the user cannot delete directly).
 *
 * Implementation: src/idmap's spawnInUserNamespace (nook's executor, with
 * newuidmap/newgidmap and every range of /etc/subuid), or, in a tree where the
 * executor is not built, util-linux `unshare --map-root-user --map-users=...`
 * (>= 2.38, first range only). Real root needs no namespace: ids map to
 * themselves.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { userInfo } from 'node:os';
import { NookError } from '../lib/errors.js';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** stdin: all of it, or a stream that is piped in as it comes (ended when the stream ends) */
  input?: string | Readable;
  onStdoutLine?: (line: string) => void;
}

export interface NamespaceRunner {
  /** Runs argv as root in the user namespace. Never throws for a non-zero exit. */
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  /** How the user gets more ids, for "owned by uid N, outside the ids available" errors. */
  readonly unmappedHint: string;
}

export interface SubordinateRange {
  start: number;
  count: number;
}

/** The first range of /etc/subuid-style `text` for the user (by name or uid). */
export function subordinateRange(text: string, user: string, uid: number): SubordinateRange | undefined {
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    if (owner !== user && owner !== String(uid)) continue;
    const range = { start: Number(start), count: Number(count) };
    if (Number.isSafeInteger(range.start) && Number.isSafeInteger(range.count) && range.count > 0) return range;
  }
  return undefined;
}

function readRange(file: string, user: string, uid: number): SubordinateRange | undefined {
  try {
    return subordinateRange(readFileSync(file, 'utf8'), user, uid);
  } catch {
    return undefined;
  }
}

function unmappedHint(user: string): string {
  return `add subordinate ids for ${user} to /etc/subuid and /etc/subgid (e.g. \`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}\`), or load the image with --ignore-chown-errors to give such files to root`;
}

export async function defaultNamespaceRunner(): Promise<NamespaceRunner> {
  const uid = process.getuid?.() ?? 0;
  const user = userInfo().username;
  if (uid === 0) return { run: (argv, options) => runCommand(argv, options), unmappedHint: unmappedHint(user) };
  const { executorPath } = await import('../runtime/executor.js');
  if (existsSync(executorPath())) return executorRunner(user);
  return unshareRunner(user, uid);
}

/** Through nook's executor and src/idmap (the normal case). */
function executorRunner(user: string): NamespaceRunner {
  return {
    unmappedHint: unmappedHint(user),
    async run(argv, options = {}) {
      const { spawnInUserNamespace } = await import('../idmap/userns.js');
      const handle = await spawnInUserNamespace(argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
      let stdout = '';
      let stderr = '';
      let pending = '';
      handle.stdout?.on('data', (chunk: Buffer) => {
        const text = chunk.toString();
        stdout += text;
        if (!options.onStdoutLine) return;
        pending += text;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line) options.onStdoutLine(line);
        }
      });
      handle.stderr?.on('data', (chunk: Buffer) => {
        if (stderr.length < 1 << 20) stderr += chunk.toString();
      });
      const ended = (stream: NodeJS.ReadableStream | null) =>
        new Promise<void>((resolve) => {
          if (!stream) return resolve();
          stream.once('end', resolve);
          stream.once('close', resolve);
          stream.once('error', () => resolve());
        });
      const streams = Promise.all([ended(handle.stdout), ended(handle.stderr)]);
      handle.stdin?.on('error', () => undefined); // the helper may exit before reading everything
      if (typeof options.input === 'object' && handle.stdin) options.input.pipe(handle.stdin);
      else handle.stdin?.end(options.input ?? '');
      await handle.started;
      const exit = await handle.exit;
      await streams;
      return { exitCode: exit.signal ? 128 + exit.signal : exit.code, stdout, stderr };
    },
  };
}

/** util-linux unshare: for trees where the executor is not built. */
function unshareRunner(user: string, uid: number): NamespaceRunner {
  const hint = unmappedHint(user);

  const uids = readRange('/etc/subuid', user, uid);
  const gids = readRange('/etc/subgid', user, uid);
  const args = ['--map-root-user'];
  if (uids && gids) args.push(`--map-users=${uids.start},1,${uids.count}`, `--map-groups=${gids.start},1,${gids.count}`);
  return {
    unmappedHint: hint,
    async run(argv, options) {
      const result = await runCommand(['unshare', ...args, '--', ...argv], options);
      if (result.exitCode !== 0 && /unrecognized option|newuidmap|newgidmap|Operation not permitted|write failed \/proc/.test(result.stderr) && !result.stdout) {
        throw new NookError(`cannot create a user namespace with ${user}'s subordinate ids: ${result.stderr.trim().split('\n')[0]}`, {
          detail: `command: unshare ${args.join(' ')} -- ${argv.join(' ')}`,
        });
      }
      return result;
    },
  };
}

async function runCommand(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...rest] = argv;
  // execa (175 modules, ~100 ms to load) only here: the executor runner, the usual one, does without it
  const { execa } = await import('execa');
  const child = execa(file!, rest, { input: options.input ?? '', reject: false, stripFinalNewline: false, buffer: true });
  child.stdin?.on('error', () => undefined); // the helper may exit before reading everything
  if (options.onStdoutLine) {
    let pending = '';
    const onLine = options.onStdoutLine;
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line) onLine(line);
      }
    });
  }
  const result = await child;
  if (result.failed && result.exitCode === undefined) {
    throw new NookError(`cannot run ${file}: ${result.shortMessage ?? 'failed'}`, { cause: result });
  }
  return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
}
