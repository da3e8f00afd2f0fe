/**
 * exec: `exec NAME true` into a running busybox container (--network none,
 * kernel overlay), from the command line to the exit of the engine; floor:
 * `runc exec` into a runc container of the same image.
 */
import { join } from 'node:path';
import { runChecked, runCommand, timeChecked } from '../command.js';
import { interleaved, type BenchContext } from '../context.js';
import type { Engine, EngineName } from '../engines.js';
import { prepareRuncBundle } from '../floors.js';
import { atMost, compareRow, type Row } from '../report.js';
import { summarize } from '../stats.js';

const GOAL = 0.5;
const CONTAINER = 'bench-exec';

export async function benchExec(ctx: BenchContext): Promise<Row[]> {
  const driver = 'overlay';
  const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
  ctx.log('exec: starting a busybox container in each engine');
  for (const engine of Object.values(engines)) {
    await engine.ensureImage(driver, ctx.busybox.archive);
    await runChecked(engine.run({ image: ctx.busybox.ref, argv: ['sleep', '100000'], driver, detach: true, name: CONTAINER, network: 'none' }));
  }
  const bundle = await prepareRuncBundle(join(ctx.work, 'runc-exec'), ctx.busyboxRootfsTar, ctx.env);
  try {
    const command = (engine: Engine) => engine.exec(driver, CONTAINER, ['true']);
    for (const engine of Object.values(engines)) await timeChecked(command(engine));
    ctx.log('exec: measuring');
    const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.latency, (subject) => timeChecked(command(engines[subject])));
    await bundle.start(CONTAINER);
    await timeChecked(bundle.exec(CONTAINER, ['true']));
    const runc: number[] = [];
    for (let i = 0; i < ctx.runs.latency; i++) runc.push(await timeChecked(bundle.exec(CONTAINER, ['true'])));
    const row = compareRow({
      group: 'exec',
      name: 'exec NAME true (busybox, running)',
      unit: 'seconds',
      nook: summarize(samples.nook),
      podman: summarize(samples.podman),
      reference: { name: 'runc exec', summary: summarize(runc) },
    });
    return [{ ...row, goal: atMost(`nook/podman <= ${GOAL}`, row.ratio, GOAL) }];
  } finally {
    await bundle.remove(CONTAINER);
    for (const engine of Object.values(engines)) await runCommand(engine.command(driver, ['rm', '-f', CONTAINER]));
  }
}
