/**
 * What every benchmark group gets: the engines with their private stores,
 * the images, the work directory on the measured file system, how many
 * repetitions, and a few helpers shared by the groups.
 */
import { createServer, type AddressInfo } from 'node:net';
import type { BenchImage, DebianImage } from './images.js';
import type { Engine, NookEngine, PodmanEngine, StorageDriver } from './engines.js';

export interface Repetitions {
  /** latency figures: start, exec, profile */
  latency: number;
  /** heavy figures: pull, load, filesystem work, containers for memory */
  heavy: number;
  /** 128 MiB transfers */
  transfer: number;
}

export interface BenchContext {
  /** scratch space on the measured file system, owned by the measuring user */
  work: string;
  /** private XDG_RUNTIME_DIR of both engines */
  runtimeDir: string;
  /** the environment both engines and the floors run with */
  env: NodeJS.ProcessEnv;
  nook: NookEngine;
  podman: PodmanEngine;
  busybox: BenchImage;
  busyboxRootfsTar: string;
  /** undefined when no group that needs it was asked for */
  debian: DebianImage | undefined;
  /** the test fixtures directory (what registry.sh pushes) */
  fixturesDir: string;
  drivers: readonly StorageDriver[];
  runs: Repetitions;
  /** where the memory group looks for processes */
  scope: { cgroup?: string; uid: number };
  log(line: string): void;
}

export function engines(ctx: BenchContext): Engine[] {
  return [ctx.nook, ctx.podman];
}

export function requireDebian(ctx: BenchContext): DebianImage {
  if (!ctx.debian) throw new Error('the Debian image was not prepared');
  return ctx.debian;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs `measure` for each subject `times` times, interleaved (a, b, b, a,
 * a, b...) so that a change in the machine's load or disk state during the
 * run falls on both equally; returns each subject's samples.
 */
export async function interleaved<K extends string>(subjects: readonly K[], times: number, measure: (subject: K, iteration: number) => Promise<number>): Promise<Record<K, number[]>> {
  const samples = Object.fromEntries(subjects.map((s) => [s, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < times; i++) {
    const order = i % 2 === 0 ? subjects : [...subjects].reverse();
    for (const subject of order) samples[subject].push(await measure(subject, i));
  }
  return samples;
}
