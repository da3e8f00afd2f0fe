/**
 * fs: file system work inside a container's root file system, for each
 * storage driver, against the same work on the host, in the same file system
 * (the suite's fresh journaled ext4, or tmpfs): unpack the Debian tree
 * (~6,500 entries, ~130 MB) from a tar, copy it (cp -a), delete both (rm -rf).
 *
 * podman's containers do the same work on the same storage drivers, and the
 * kernel's overlay alone (mounted by `unshare`, no engine) shows what the
 * union file system itself costs.
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
import { removeTree, type Engine, type EngineName, type StorageDriver } from '../engines.js';
import { atLeast, compareRow, type Row } from '../report.js';
import { ratio, summarize } from '../stats.js';

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

/** The kernel's overlay without an engine: the user's namespace, a mount, the script in it (userxattr, as rootless engines mount it). */
const OVERLAY_ALONE = `set -e
d=$1; shift
mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged"
mount -t overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work,userxattr" overlay "$d/merged"
exec sh -c "$@"`;

export async function benchFs(ctx: BenchContext): Promise<Row[]> {
  const debian = requireDebian(ctx);
  const hostDir = join(ctx.work, 'fs-host');
  const overlayDir = join(ctx.work, 'fs-overlay');
  const samples = new Map<string, Record<Phase, number>[]>();
  const add = (subject: string, phases: Record<Phase, number>) => samples.set(subject, [...(samples.get(subject) ?? []), phases]);
  const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
  for (const driver of ctx.drivers) for (const engine of Object.values(engines)) await engine.ensureImage(driver, debian.archive);
  const inContainer = async (engine: Engine, driver: StorageDriver) =>
    parsePhases(
      (
        await runChecked(
          engine.run({ image: debian.ref, driver, rm: true, network: 'none', volumes: [`${debian.treeTar}:/bench/tree.tar:ro`], argv: ['sh', '-c', SCRIPT, 'sh', '/bench/work', '/bench/tree.tar'] }),
        )
      ).stdout,
    );
  const onHost = async () => {
    await mkdir(hostDir, { recursive: true });
    const result = await runChecked({ file: 'sh', args: ['-c', SCRIPT, 'sh', hostDir, debian.treeTar], env: ctx.env });
    await removeTree(hostDir, ctx.env);
    return parsePhases(result.stdout);
  };
  const onOverlayAlone = async () => {
    const result = await runChecked({
      file: 'unshare',
      args: ['--map-root-user', '--mount', 'sh', '-c', OVERLAY_ALONE, 'sh', overlayDir, SCRIPT, 'sh', join(overlayDir, 'merged/work'), debian.treeTar],
      env: ctx.env,
    });
    await removeTree(overlayDir, ctx.env);
    return parsePhases(result.stdout);
  };
  // one untimed round: the tar in the page cache, the image's layers read once
  await onHost();
  await onOverlayAlone();
  for (const engine of Object.values(engines)) await inContainer(engine, 'overlay');
  for (let i = 0; i < ctx.runs.heavy; i++) {
    ctx.log(`fs: round ${i + 1} of ${ctx.runs.heavy}`);
    add('host', await onHost());
    if (ctx.drivers.includes('overlay')) add('overlay alone', await onOverlayAlone());
    for (const driver of ctx.drivers) {
      const order = i % 2 === 0 ? (['nook', 'podman'] as const) : (['podman', 'nook'] as const);
      for (const name of order) add(`${name} ${driver}`, await inContainer(engines[name], driver));
    }
  }

  const rows: Row[] = [];
  const series = (subject: string, p: Phase | 'total') => {
    const values = (samples.get(subject) ?? []).map((s) => (p === 'total' ? s.untar + s.copy + s.delete : s[p]));
    return values.length > 0 ? summarize(values) : undefined;
  };
  const host = (p: Phase | 'total') => series('host', p)!;
  for (const driver of ctx.drivers) {
    for (const p of [...PHASES, 'total'] as const) {
      const nook = series(`nook ${driver}`, p)!;
      // speed relative to the host's: host time / container time
      const relative = ratio(host(p), nook);
      const row = compareRow({ group: 'fs', name: `${p}, ${driver}`, unit: 'seconds', nook, podman: series(`podman ${driver}`, p), reference: { name: 'host', summary: host(p) } });
      rows.push({
        ...row,
        ...(driver === 'overlay' && p === 'total' ? { goal: atLeast(`nook speed vs host's >= ${GOAL}`, relative, GOAL) } : {}),
        detail: { nookSpeedVsHost: relative, podmanSpeedVsHost: ratio(host(p), row.podman) },
      });
    }
    if (driver === 'overlay') {
      const alone = series('overlay alone', 'total')!;
      rows.push({
        group: 'fs',
        name: 'total, kernel overlay without an engine (unshare -r -m, mount, userxattr)',
        unit: 'seconds',
        reference: { name: 'kernel', summary: alone },
        detail: { speedVsHost: ratio(host('total'), alone), phases: Object.fromEntries(PHASES.map((p) => [p, series('overlay alone', p)])) },
      });
    }
  }
  return rows;
}
