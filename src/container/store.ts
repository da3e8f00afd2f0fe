/**
 * Containers on disk. Each container has a directory under the data root
 * (its record, config.json, upper layer, generated files, log) and one under
 * the run root (what the monitor writes while it runs: pid and exit files).
 *
 * The record is written atomically; the live status is derived, not trusted:
 * a container recorded as running whose monitor is gone (kill -9, reboot) is
 * reported as exited, so `ps` and `rm` always see the truth.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError, errnoCode } from '../lib/errors.js';
import type { NookPaths } from '../lib/paths.js';
import type { StorageDriverName } from '../rootfs/driver.js';
import { isSameProcess } from '../lib/processes.js';

export type ContainerStatus = 'created' | 'running' | 'exited';

export interface ContainerRecord {
  id: string;
  name: string;
  image: string;
  imageId: string;
  command: string[];
  created: string;
  storageDriver: StorageDriverName;
  /** The image's extracted layers, top-most first: the container keeps its image's layers in use. */
  lowerDirs: string[];
  /** Last status nook wrote; see `refreshStatus` for the live one. */
  status: ContainerStatus;
  pid?: number;
  monitorPid?: number;
  /** /proc/PID/stat start time of the monitor, to tell it from a reused pid. */
  monitorStartTime?: string;
  exitCode?: number;
  oomKilled?: boolean;
  startedAt?: string;
  finishedAt?: string;
  autoRemove: boolean;
  detached: boolean;
  tty: boolean;
  hostname: string;
  network: { mode: string; publish: string[]; state?: unknown };
  stopSignal?: string;
  /** The cgroup manager chosen at create, and the container's cgroup once started (src/cgroups). */
  cgroup?: import('../cgroups/manager.js').ContainerCgroup;
  /** Said once at start when the user has no subordinate ids. */
  idMappingWarning?: string | undefined;
}

export class ContainerStore {
  readonly containersDir: string;
  readonly runDir: string;

  constructor(readonly paths: NookPaths) {
    this.containersDir = join(paths.root, 'containers');
    this.runDir = join(paths.runRoot, 'containers');
  }

  dataDir(id: string): string {
    return join(this.containersDir, id);
  }

  stateDir(id: string): string {
    return join(this.runDir, id);
  }

  newId(): string {
    return randomBytes(32).toString('hex');
  }

  list(): ContainerRecord[] {
    let ids: string[];
    try {
      ids = readdirSync(this.containersDir);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw error;
    }
    return ids.flatMap((id) => {
      const record = this.readRecord(id);
      return record ? [this.refreshStatus(record)] : [];
    });
  }

  private readRecord(id: string): ContainerRecord | null {
    try {
      return JSON.parse(readFileSync(join(this.dataDir(id), 'container.json'), 'utf8')) as ContainerRecord;
    } catch {
      // A directory without a complete record is a create that died midway; `rm` of its id cleans it.
      return null;
    }
  }

  /** By full id, unique id prefix, or name (as podman). */
  find(nameOrId: string): ContainerRecord | null {
    const all = this.list();
    const exact = all.find((c) => c.id === nameOrId || c.name === nameOrId);
    if (exact) return exact;
    const byPrefix = all.filter((c) => c.id.startsWith(nameOrId));
    if (byPrefix.length > 1) throw new NookError(`more than one container matches "${nameOrId}": give more of the id`);
    return byPrefix[0] ?? null;
  }

  get(nameOrId: string): ContainerRecord {
    const record = this.find(nameOrId);
    if (!record) throw new NookError(`no such container: ${nameOrId}`);
    return record;
  }

  save(record: ContainerRecord): void {
    const dir = this.dataDir(record.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.container.json.${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, join(dir, 'container.json'));
  }

  /** The live status: what the monitor left behind beats what was recorded. */
  refreshStatus(record: ContainerRecord): ContainerRecord {
    if (record.status !== 'running') return record;
    const exit = this.readExitFile(record.id);
    if (exit) {
      const updated: ContainerRecord = { ...record, status: 'exited', exitCode: exit.code, finishedAt: exit.finishedAt, ...(exit.oomKilled ? { oomKilled: true } : {}) };
      this.trySave(updated);
      return updated;
    }
    if (record.monitorPid && isSameProcess(record.monitorPid, record.monitorStartTime)) return record;
    // The monitor died without writing an exit status (killed, or a reboot).
    const updated: ContainerRecord = { ...record, status: 'exited', exitCode: record.exitCode ?? 137, finishedAt: new Date().toISOString() };
    this.trySave(updated);
    return updated;
  }

  private trySave(record: ContainerRecord): void {
    try {
      this.save(record);
    } catch {
      // Reading must not fail because the store is read-only for us.
    }
  }

  exitFile(id: string): string {
    return join(this.stateDir(id), 'exit');
  }

  readExitFile(id: string): { code: number; finishedAt: string; oomKilled: boolean } | null {
    try {
      const text = readFileSync(this.exitFile(id), 'utf8').trim();
      // "CODE [FINISHED_AT] [oom]": the executor writes " oom" when the OOM killer struck in the container's cgroup.
      const [code, ...rest] = text.split(/\s+/);
      const finishedAt = rest.find((word) => word !== 'oom');
      return { code: Number(code), finishedAt: finishedAt ?? new Date().toISOString(), oomKilled: rest.includes('oom') };
    } catch {
      return null;
    }
  }

  nameTaken(name: string): boolean {
    return this.list().some((c) => c.name === name);
  }

  exists(id: string): boolean {
    return existsSync(this.dataDir(id));
  }
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'fond', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'merry', 'nifty', 'proud', 'quiet', 'swift', 'tender', 'witty'];
const NOUNS = ['badger', 'curie', 'darwin', 'euler', 'fermat', 'gauss', 'heron', 'hopper', 'lovelace', 'noether', 'otter', 'pascal', 'raven', 'turing', 'wren', 'yak'];

export function randomName(): string {
  const pick = (list: string[]) => list[randomBytes(1)[0]! % list.length]!;
  return `${pick(ADJECTIVES)}_${pick(NOUNS)}`;
}
