/**
 * The suite's command line.
 *
 *   npm run bench [-- OPTIONS]          (= node dist/bench/run.js OPTIONS)
 *
 *   --quick              a short run: 3 repetitions of latency figures, 1 of heavy ones, 2 transfers
 *   --only G1,G2         only these groups: start,exec,pull,load,memory,fs,network,profile
 *   --runs N             repetitions of latency figures (start, exec, profile; default 10)
 *   --heavy N            repetitions of heavy figures (pull, load, fs, containers for memory; default 3)
 *   --transfers N        repetitions of 128 MiB transfers (default 5)
 *   --drivers D1,D2      storage drivers (default overlay,fuse-overlayfs,vfs)
 *   --fs loop|tmpfs|DIR  where the work happens: as root a fresh journaled ext4 loop file system
 *                        (default) or a tmpfs; as a user a directory (default: a tmpfs, /dev/shm)
 *   --user NAME          (root) the unprivileged user who measures (default nooktest)
 *   --json FILE          where to write the results (default bench/results/latest.json)
 *   --keep               keep the work directory
 */
import { parseArgs } from 'node:util';
import { STORAGE_DRIVERS, type StorageDriver } from './engines.js';
import { GROUPS, type GroupName } from './report.js';
import type { Repetitions } from './context.js';

export interface BenchOptions {
  quick: boolean;
  groups: GroupName[];
  runs: Repetitions;
  drivers: StorageDriver[];
  fs: string | undefined;
  user: string;
  json: string | undefined;
  keep: boolean;
  /** set by the root part for the measuring process */
  worker?: { work: string; fsDescription: string; cgroup?: string; extraRows?: string };
}

function list<T extends string>(value: string, allowed: readonly T[], what: string): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`unknown ${what} "${item}" (one of ${allowed.join(', ')})`);
  return items as T[];
}

function count(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, not "${value}"`);
  return n;
}

export const USAGE = `usage: npm run bench -- [--quick] [--only ${GROUPS.join(',')}] [--runs N] [--heavy N] [--transfers N]
                        [--drivers ${STORAGE_DRIVERS.join(',')}] [--fs loop|tmpfs|DIR] [--user NAME] [--json FILE] [--keep]`;

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      runs: { type: 'string' },
      heavy: { type: 'string' },
      transfers: { type: 'string' },
      drivers: { type: 'string' },
      fs: { type: 'string' },
      user: { type: 'string', default: 'nooktest' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      // internal: the root part hands these to the measuring process
      worker: { type: 'boolean', default: false },
      work: { type: 'string' },
      'fs-description': { type: 'string' },
      cgroup: { type: 'string' },
      'extra-rows': { type: 'string' },
    },
    strict: true,
  });
  if (values.help) throw new HelpRequested();
  const quick = values.quick!;
  const options: BenchOptions = {
    quick,
    groups: values.only ? list(values.only, GROUPS, 'group') : [...GROUPS],
    runs: {
      latency: count(values.runs, quick ? 3 : 10, '--runs'),
      heavy: count(values.heavy, quick ? 1 : 3, '--heavy'),
      transfer: count(values.transfers, quick ? 2 : 5, '--transfers'),
    },
    drivers: values.drivers ? list(values.drivers, STORAGE_DRIVERS, 'storage driver') : [...STORAGE_DRIVERS],
    fs: values.fs,
    user: values.user!,
    json: values.json,
    keep: values.keep!,
  };
  if (values.worker) {
    if (!values.work || !values['fs-description']) throw new Error('--worker needs --work and --fs-description');
    options.worker = {
      work: values.work,
      fsDescription: values['fs-description'],
      ...(values.cgroup ? { cgroup: values.cgroup } : {}),
      ...(values['extra-rows'] ? { extraRows: values['extra-rows'] } : {}),
    };
  }
  return options;
}

/** The arguments that carry the user's choices over to the measuring process. */
export function forwardedArgs(options: BenchOptions): string[] {
  return [
    ...(options.quick ? ['--quick'] : []),
    '--only', options.groups.join(','),
    '--runs', String(options.runs.latency),
    '--heavy', String(options.runs.heavy),
    '--transfers', String(options.runs.transfer),
    '--drivers', options.drivers.join(','),
    ...(options.keep ? ['--keep'] : []),
  ];
}

export class HelpRequested extends Error {
  constructor() {
    super(USAGE);
  }
}

export const DEBIAN_GROUPS: readonly GroupName[] = ['start', 'pull', 'load', 'fs'];
