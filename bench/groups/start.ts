/**
 * start: `run --rm IMAGE true` from the command line to the exit of the
 * engine, for busybox and the two-layer Debian image, with --network none and
 * with the engine's default network (slirp4netns), for each storage driver;
 * floors: the namespaces alone and runc on a bundle.
 */
import { join } from 'node:path';
import { timeChecked } from '../command.js';
import { interleaved, requireDebian, type BenchContext } from '../context.js';
import type { Engine, EngineName } from '../engines.js';
import { prepareRuncBundle, unshareFloor } from '../floors.js';
import type { BenchImage } from '../images.js';
import { atMost, compareRow, type Row } from '../report.js';
import { summarize } from '../stats.js';

const GOAL = 0.5;

export async function benchStart(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const images: [string, BenchImage][] = [['busybox', ctx.busybox], ['debian', requireDebian(ctx)]];
  const networks: [string, string | undefined][] = [['--network none', 'none'], ['default network', undefined]];
  for (const [imageName, image] of images) {
    for (const [networkName, network] of networks) {
      for (const driver of ctx.drivers) {
        const name = `${imageName}, ${networkName}, ${driver}`;
        ctx.log(`start: ${name}`);
        const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
        for (const engine of Object.values(engines)) await engine.ensureImage(driver, image.archive);
        const command = (engine: Engine) => engine.run({ image: image.ref, argv: ['true'], driver, rm: true, ...(network ? { network } : {}) });
        // one start each first: caches, podman's per-store set-up, slirp4netns' first run
        for (const engine of Object.values(engines)) await timeChecked(command(engine));
        const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.latency, (subject) => timeChecked(command(engines[subject])));
        const nook = summarize(samples.nook);
        const podman = summarize(samples.podman);
        const row = compareRow({ group: 'start', name, unit: 'seconds', nook, podman });
        rows.push({ ...row, goal: atMost(`nook/podman <= ${GOAL}`, row.ratio, GOAL) });
      }
    }
  }

  ctx.log('start: floors');
  const unshare: number[] = [];
  for (let i = 0; i < ctx.runs.latency; i++) unshare.push(await timeChecked(unshareFloor(ctx.env)));
  rows.push({ group: 'start', name: 'floor: unshare -U -r -m -p -f true', unit: 'seconds', reference: { name: 'kernel', summary: summarize(unshare) } });
  const bundle = await prepareRuncBundle(join(ctx.work, 'runc-start'), ctx.busyboxRootfsTar, ctx.env);
  await timeChecked(bundle.run('bench-warmup'));
  const runc: number[] = [];
  for (let i = 0; i < ctx.runs.latency; i++) runc.push(await timeChecked(bundle.run(`bench-${i}`)));
  rows.push({ group: 'start', name: 'floor: runc run (rootless bundle, busybox, own netns)', unit: 'seconds', reference: { name: 'runc', summary: summarize(runc) } });
  return rows;
}
