/**
 * Running a helper command as root of a user namespace that has the user's
 * full id mapping (their own uid as 0, the subordinate ids from /etc/subuid
 * and /etc/subgid as 1..N), as podman does for `podman unshare`. The store uses
 * it to extract layers (so that chown to a file's owner lands on the host id
 * that owner maps to) and to delete layer directories (whose files belong to
 * subordinate ids the user cannot delete directly).
 *
 * Implementation: util-linux `unshare --map-root-user --map-users=...` (>= 2.38,
 * it calls newuidmap/newgidmap). Real root needs no namespace: ids map to
 * themselves.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { NookError } from '../lib/errors.js';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface NamespaceRunner {
  /** Runs argv as root in the user namespace. Never throws for a non-zero exit. */
  run(argv: string[], options?: { input?: string; onStdoutLine?: (line: string) => void }): Promise<RunResult>;
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

export function defaultNamespaceRunner(): NamespaceRunner {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const user = userInfo().username;
  const hint = `add subordinate ids for ${user} to /etc/subuid and /etc/subgid (e.g. \`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}\`), or load the image with --ignore-chown-errors to give such files to root`;
  if (uid === 0) return { run: (argv, options) => runCommand(argv, options), unmappedHint: hint };

  const uids = readRange('/etc/subuid', user, uid);
  const gids = readRange('/etc/subgid', user, uid);
  const args = ['--map-root-user'];
  if (uids && gids) args.push(`--map-users=${uids.start},1,${uids.count}`, `--map-groups=${gids.start},1,${gids.count}`);
  void gid;
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

async function runCommand(argv: string[], options: { input?: string; onStdoutLine?: (line: string) => void } = {}): Promise<RunResult> {
  const [file, ...rest] = argv;
  const child = execa(file!, rest, { input: options.input ?? '', reject: false, stripFinalNewline: false, buffer: true });
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
