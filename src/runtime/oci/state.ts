/**
 * nook-runtime's state directory, as runc's: one directory per container
 * under the runtime root (--root), holding what the runtime needs after
 * `create` has exited:
 *
 *   ROOT/ID/state.json   the record below
 *   ROOT/ID/config.json  the bundle's config.json as it was at create (hooks
 *                        for start and delete, namespaces for exec)
 *   ROOT/ID/exec.fifo    exists while the container is created and not
 *                        started: its process waits for a byte in it
 *
 * The status is never stored: it is derived from the process (alive, same
 * start time, not a zombie) and the FIFO, as runc derives it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic.js';
import { NookError } from '../../lib/errors.js';
import type { OciSpec } from '../spec.js';

/** The OCI runtime spec version nook-runtime implements. */
export const OCI_VERSION = '1.2.0';

export type RuntimeStatus = 'creating' | 'created' | 'running' | 'stopped';

/** The state as the runtime spec defines it (`state` prints it, hooks read it on stdin). */
export interface OciState {
  ociVersion: string;
  id: string;
  status: RuntimeStatus;
  /** the container process on the host; 0 once stopped (as runc prints it) */
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
}

/** What nook-runtime keeps in state.json. */
export interface RuntimeRecord {
  id: string;
  bundle: string;
  rootfs: string;
  /** RFC 3339 */
  created: string;
  owner: string;
  annotations: Record<string, string>;
  /** the container's process on the host; 0 while `create` runs */
  pid: number;
  /** /proc/PID/stat start time, to tell a reused pid */
  pidStartTime?: string;
  /** the `create` (or `run`) process, to tell an aborted create */
  creatorPid: number;
  creatorStartTime?: string;
  /** the cgroup the container was put in (src/cgroups), if any */
  cgroup?: unknown;
}

const ID_PATTERN = /^[\w+.-]+$/;

/** runc's rule: letters, digits, _ + - and ., not "." or "..". */
export function validateId(id: string): void {
  if (!ID_PATTERN.test(id) || id === '.' || id === '..' || id.length > 1024) throw new NookError(`invalid container ID format: ${id}`, { exitCode: 1 });
}

/**
 * runc's choice: $XDG_RUNTIME_DIR/nook-runtime when it is the caller's,
 * /run/nook-runtime for root, else a private directory under /tmp.
 */
export function defaultRuntimeRoot(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && isAbsolute(xdg)) {
    try {
      const st = statSync(xdg);
      if (st.isDirectory() && st.uid === uid) return join(xdg, 'nook-runtime');
    } catch {
      // fall through
    }
  }
  if (uid === 0) return '/run/nook-runtime';
  return join(tmpdir(), `nook-runtime-${uid}`);
}

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Alive, the same process (start time), and not a zombie waiting for its parent. */
export function isLiveProcess(pid: number, startTime: string | undefined): boolean {
  if (pid <= 0) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTime === undefined || fields[19] === startTime;
}

function ownerName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

export class RuntimeStore {
  readonly root: string;

  constructor(root: string) {
    if (resolve(root) === '/') throw new NookError('Option --root argument should not be set to /', { exitCode: 1 });
    this.root = resolve(root);
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  fifo(id: string): string {
    return join(this.dir(id), 'exec.fifo');
  }

  configPath(id: string): string {
    return join(this.dir(id), 'config.json');
  }

  /** Makes the container's directory; fails when the id is taken (mkdir is the lock). */
  reserve(id: string): string {
    validateId(id);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(this.dir(id), { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new NookError('container with given ID already exists', { exitCode: 1 });
      throw error;
    }
    return this.dir(id);
  }

  newRecord(id: string, bundle: string, rootfs: string, annotations: Record<string, string>): RuntimeRecord {
    return {
      id,
      bundle,
      rootfs,
      created: new Date().toISOString(),
      owner: ownerName(),
      annotations,
      pid: 0,
      creatorPid: process.pid,
      ...(processStartTime(process.pid) ? { creatorStartTime: processStartTime(process.pid)! } : {}),
    };
  }

  save(record: RuntimeRecord): void {
    writeJsonAtomic(join(this.dir(record.id), 'state.json'), record, { mode: 0o600 });
  }

  saveConfig(id: string, spec: OciSpec): void {
    writeJsonAtomic(this.configPath(id), spec, { mode: 0o600 });
  }

  /** The record, or the runtime spec's error for an unknown id. */
  load(id: string): RuntimeRecord {
    validateId(id);
    let text: string;
    try {
      text = readFileSync(join(this.dir(id), 'state.json'), 'utf8');
    } catch {
      throw new NookError(`container ${id} does not exist`, { exitCode: 1 });
    }
    return JSON.parse(text) as RuntimeRecord;
  }

  config(id: string): OciSpec {
    return JSON.parse(readFileSync(this.configPath(id), 'utf8')) as OciSpec;
  }

  /** Ids of the containers in the root (directories with a state.json). */
  ids(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    return names.filter((name) => existsSync(join(this.root, name, 'state.json'))).sort();
  }

  status(record: RuntimeRecord): RuntimeStatus {
    if (record.pid === 0) return isLiveProcess(record.creatorPid, record.creatorStartTime) ? 'creating' : 'stopped';
    if (!isLiveProcess(record.pid, record.pidStartTime)) return 'stopped';
    return existsSync(this.fifo(record.id)) ? 'created' : 'running';
  }

  state(record: RuntimeRecord, status: RuntimeStatus = this.status(record)): OciState {
    return {
      ociVersion: OCI_VERSION,
      id: record.id,
      status,
      pid: status === 'stopped' ? 0 : record.pid,
      bundle: record.bundle,
      annotations: record.annotations,
    };
  }

  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }
}
