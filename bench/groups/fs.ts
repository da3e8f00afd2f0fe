/**
 * fs: file system work inside a container's root file system, for each
 * storage driver, against the same work on the host, in the same file system
 * (the suite's fresh journaled ext4, or tmpfs): unpack the Debian tree
 * (~6,500 entries, ~130 MB) from a tar, copy it (cp -a), delete both (rm -rf).
 *
 * The same programs do the work on both sides: the container is the Debian
 * image (bookworm's GNU tar and coreutils, as on the host), the tar comes in
 * on a read-only bind mount, and each phase is timed inside with
 * `date +%s%N`, so that the container's start is not counted. No sync: these
 * are page-cache speeds, which is where the storage drivers differ.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked } from '../command.js';
import { requireDebian, type BenchContext } from '../context.js';
import type { StorageDriver } from '../engines.js';
import { removeTree } from '../engines.js';
import { atLeast, type Row } from '../report.js';
import { ratio, summarize, type Summary } from '../stats.js';

const GOAL = 0.9;
const PHASES = ['untar', 'copy', 'delete'] as const;
type Phase = (typeof PHASES)[number];

/** $1 work directory (created), $2 the tar; prints the three phases in nanoseconds. */
const SCRIPT = `set -e
w=$1; in=$2
mkdir -p "$w/a"
t0=$(date +%s%N)
tar -xf "$in" -C "$w/a" --no-same-owner
t1=$(date +%s%N)
cp -a "$w/a" "$w/b"
t2=$(date +%s%N)
rm -rf "$w/a" "$w/b"
t3=$(date +%s%N)
echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2))"`;

function parsePhases(stdout: string): Record<Phase, number> {
  const words = stdout.trim().split(/\s+/).map(Number);
  if (words.length !== 3 || words.some((n) => !Number.isFinite(n))) throw new Error(`unexpected output of the filesystem script: ${stdout.trim()}`);
  return { untar: words[0]! / 1e9, copy: words[1]! / 1e9, delete: words[2]! / 1e9 };
}

export async function benchFs(ctx: BenchContext): Promise<Row[]> {
  const debian = requireDebian(ctx);
  const hostDir = join(ctx.work, 'fs-host');
  const samples = new Map<string, Record<Phase, number>[]>();
  const add = (subject: string, phases: Record<Phase, number>) => samples.set(subject, [...(samples.get(subject) ?? []), phases]);
  await ctx.nook.ensureImage('overlay', debian.archive);
  const inContainer = async (driver: StorageDriver) =>
    parsePhases(
      (
        await runChecked(
          ctx.nook.run({ image: debian.ref, driver, rm: true, network: 'none', volumes: [`${debian.treeTar}:/bench/tree.tar:ro`], argv: ['sh', '-c', SCRIPT, 'sh', '/bench/work', '/bench/tree.tar'] }),
        )
      ).stdout,
    );
  const onHost = async () => {
    await mkdir(hostDir, { recursive: true });
    const result = await runChecked({ file: 'sh', args: ['-c', SCRIPT, 'sh', hostDir, debian.treeTar], env: ctx.env });
    await removeTree(hostDir, ctx.env);
    return parsePhases(result.stdout);
  };
  // one untimed round: the tar in the page cache, the image's layers read once
  await onHost();
  await inContainer('overlay');
  for (let i = 0; i < ctx.runs.heavy; i++) {
    ctx.log(`fs: round ${i + 1} of ${ctx.runs.heavy}`);
    add('host', await onHost());
    for (const driver of ctx.drivers) add(driver, await inContainer(driver));
  }

  const rows: Row[] = [];
  const totals = (subject: string) => (samples.get(subject) ?? []).map((s) => s.untar + s.copy + s.delete);
  const phase = (subject: string, p: Phase) => (samples.get(subject) ?? []).map((s) => s[p]);
  const host: Record<Phase | 'total', Summary> = {
    untar: summarize(phase('host', 'untar')),
    copy: summarize(phase('host', 'copy')),
    delete: summarize(phase('host', 'delete')),
    total: summarize(totals('host')),
  };
  for (const driver of ctx.drivers) {
    for (const p of [...PHASES, 'total'] as const) {
      const nook = summarize(p === 'total' ? totals(driver) : phase(driver, p));
      // speed relative to the host's: host time / container time
      const relative = ratio(host[p], nook);
      rows.push({
        group: 'fs',
        name: `${p}, ${driver}`,
        unit: 'seconds',
        nook,
        reference: { name: 'host', summary: host[p] },
        ...(driver === 'overlay' && p === 'total'
          ? { goal: atLeast(`speed vs host's >= ${GOAL}`, relative, GOAL) }
          : { detail: { speedVsHost: relative } }),
      });
    }
  }
  return rows;
}
