/**
 * Running a program inside a fresh user namespace with the user's full id
 * mapping: uid 0 inside, with all capabilities over the namespace's files.
 * That is how nook handles files owned by subordinate ids: extracting image
 * layers (chown to any id of the image), deleting a container's storage
 * (`rm -rf` of files the user does not own on the host), and `nook unshare`.
 *
 * Through the executor with no other namespace (a mount namespace on request).
 */
import { NookError } from '../lib/errors.js';
import type { ExecutorHandle, StdioEntry } from '../runtime/executor.js';
import type { ExecutorPlan } from '../runtime/plan.js';
import { computeIdMapping, newUserNamespacePlan, type IdMapping, type IdMappingOptions } from './mapping.js';

export interface UserNamespaceRunOptions {
  /** Where subordinate ids and the helpers are found (tests); ignored when `mapping` is given. */
  paths?: IdMappingOptions;
  /** A mapping computed already (default: the current user's full one). */
  mapping?: IdMapping;
  /** Environment of the program (default: nook's own). */
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: nook's own). */
  cwd?: string;
  /** Default ['ignore', 'pipe', 'pipe']: output is collected and the end of stderr goes into errors. */
  stdio?: StdioEntry | [StdioEntry, StdioEntry, StdioEntry];
  /** Also a new mount namespace (mounts made inside vanish with it). */
  mountNamespace?: boolean;
  /** Throw a NookError when the program exits non-zero (default true). */
  reject?: boolean;
  onTrace?: (text: string) => void;
}

export interface UserNamespaceResult {
  code: number;
  signal: number | null;
  /** Collected when stdout/stderr were 'pipe'; '' otherwise. */
  stdout: string;
  stderr: string;
}

function envList(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined && !entry[0].includes('=') && !entry[0].includes('\0') && !entry[1].includes('\0'))
    .map(([k, v]) => `${k}=${v}`);
}

/** The executor plan for `args` as root of a new user namespace. */
export function userNamespacePlan(args: string[], mapping: IdMapping, options: Pick<UserNamespaceRunOptions, 'env' | 'cwd' | 'mountNamespace'> & { trace?: boolean; terminal?: boolean } = {}): ExecutorPlan {
  if (args.length === 0) throw new NookError('no command to run in the user namespace');
  return {
    trace: options.trace ?? false,
    user: newUserNamespacePlan(mapping),
    namespaces: options.mountNamespace ? [{ type: 'mnt' }] : [],
    outerOps: [],
    innerOps: [],
    process: {
      args,
      env: envList(options.env ?? process.env),
      cwd: options.cwd ?? process.cwd(),
      uid: 0,
      gid: 0,
      additionalGids: [],
      // uid 0 keeps every capability of the namespace across execve.
      capabilities: null,
      noNewPrivileges: false,
      seccompFilter: null,
      rlimits: [],
      oomScoreAdj: null,
      searchPath: !args[0]!.includes('/'),
      terminal: options.terminal ?? false,
      umask: null,
    },
    monitor: { mode: 'foreground', dieWithParent: true },
  };
}

/** Starts `args` in a new user namespace; the handle gives its stdio streams and promises. */
export async function spawnInUserNamespace(args: string[], options: UserNamespaceRunOptions = {}): Promise<ExecutorHandle> {
  const mapping = options.mapping ?? (await computeIdMapping(undefined, options.paths));
  const plan = userNamespacePlan(args, mapping, { ...options, trace: options.onTrace !== undefined });
  const { startExecutor } = await import('../runtime/executor.js');
  return startExecutor(plan, {
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
    detached: false,
    ...(options.onTrace ? { onTrace: options.onTrace } : {}),
  });
}

function collect(stream: NodeJS.ReadableStream | null, limit = 1 << 20): () => string {
  if (!stream) return () => '';
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    if (size < limit) chunks.push(chunk);
    size += chunk.length;
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Waits until a readable stream has been read to its end (or failed). */
function drained(stream: NodeJS.ReadableStream | null): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
}

/**
 * Runs `args` as root of a new user namespace with the user's id mapping and
 * waits for it. Rejects when it cannot start, and (unless `reject: false`)
 * when it exits non-zero, with the last line of its stderr in the message.
 */
export async function runInUserNamespace(args: string[], options: UserNamespaceRunOptions = {}): Promise<UserNamespaceResult> {
  const handle = await spawnInUserNamespace(args, options);
  const stdout = collect(handle.stdout);
  const stderr = collect(handle.stderr);
  const ends = Promise.all([drained(handle.stdout), drained(handle.stderr)]);
  await handle.started;
  const exit = await handle.exit;
  await ends;
  const result: UserNamespaceResult = { code: exit.code, signal: exit.signal, stdout: stdout(), stderr: stderr() };
  if (exit.code !== 0 && options.reject !== false) {
    const lastLine = result.stderr.trim().split('\n').pop() ?? '';
    const how = exit.signal ? `was killed by signal ${exit.signal}` : `exited with status ${exit.code}`;
    throw new NookError(`${args.join(' ')} (in the user namespace) ${how}${lastLine ? `: ${lastLine}` : ''}`, { detail: result.stderr || undefined });
  }
  return result;
}

/**
 * `rm -rf PATH` as root of the user namespace: for trees holding files of
 * subordinate ids (a container's upper layer, an extracted image layer),
 * which the user cannot delete on the host.
 */
export async function removeInUserNamespace(path: string, options: Pick<UserNamespaceRunOptions, 'paths' | 'mapping'> = {}): Promise<void> {
  if (!path.startsWith('/') || path === '/') throw new NookError(`refusing to remove "${path}": an absolute path other than / is expected`);
  await runInUserNamespace(['rm', '-rf', '--', path], { ...options, cwd: '/' });
}
