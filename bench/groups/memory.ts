/**
 * memory: what stays resident per detached container, beside the
 * container's own processes: nook's monitor and setup processes (nook-exec),
 * slirp4netns, fuse-overlayfs; podman's conmon, slirp4netns, rootlessport and
 * fuse-overlayfs. Each container is busybox `sleep` with the default network
 * and one published port; the containers of one engine stay up while the next
 * ones are started, as on a machine running several.
 *
 * RSS counts every page a process maps; PSS divides shared pages (libc,
 * the same binary in several processes) among the processes mapping them,
 * the fairer figure for "what one more container costs".
 */
import { runChecked, runCommand, sleep } from '../command.js';
import { type BenchContext } from '../context.js';
import type { Engine, EngineName, StorageDriver } from '../engines.js';
import { leftBehind, snapshot, type ProcessMemory } from '../procs.js';
import { atMost, compareRow, type Row } from '../report.js';
import { median, summarize } from '../stats.js';

const GOAL = 0.5;
/** time for the helpers to finish starting (podman's rootlessport child, fuse-overlayfs' first lookups) */
const SETTLE_MS = 1500;

interface Sample {
  rss: number;
  pss: number;
  processes: ProcessMemory[];
}

async function measureOne(ctx: BenchContext, engine: Engine, driver: StorageDriver, name: string): Promise<Sample> {
  const before = snapshot(ctx.scope);
  await runChecked(engine.run({ image: ctx.busybox.ref, argv: ['sleep', '100000'], driver, detach: true, name, publish: ['127.0.0.1::80'] }));
  await sleep(SETTLE_MS);
  const pid = await engine.containerPid(driver, name);
  const after = snapshot(ctx.scope);
  const { helpers } = leftBehind(before, after, pid);
  if (helpers.length === 0) throw new Error(`${engine.name}: no helper process found for container ${name} (pid ${pid})`);
  return {
    rss: helpers.reduce((n, p) => n + p.rss, 0),
    pss: helpers.reduce((n, p) => n + (p.pss ?? p.rss), 0),
    processes: helpers,
  };
}

/** process name -> median RSS and PSS over the samples, for the JSON and the docs */
function breakdown(samples: Sample[]): Record<string, { count: number; rss: number; pss: number }> {
  const byName = new Map<string, { rss: number[]; pss: number[]; count: number[] }>();
  for (const sample of samples) {
    const perSample = new Map<string, { rss: number; pss: number; count: number }>();
    for (const p of sample.processes) {
      const entry = perSample.get(p.name) ?? { rss: 0, pss: 0, count: 0 };
      entry.rss += p.rss;
      entry.pss += p.pss ?? p.rss;
      entry.count++;
      perSample.set(p.name, entry);
    }
    for (const [name, entry] of perSample) {
      const all = byName.get(name) ?? { rss: [], pss: [], count: [] };
      all.rss.push(entry.rss);
      all.pss.push(entry.pss);
      all.count.push(entry.count);
      byName.set(name, all);
    }
  }
  return Object.fromEntries([...byName].map(([name, v]) => [name, { count: median(v.count), rss: median(v.rss), pss: median(v.pss) }]));
}

export async function benchMemory(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const drivers = ctx.drivers.filter((d) => d !== 'vfs'); // vfs has no mount helper: the same as overlay
  for (const driver of drivers) {
    const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
    const samples: Record<EngineName, Sample[]> = { nook: [], podman: [] };
    const started: Record<EngineName, string[]> = { nook: [], podman: [] };
    try {
      for (const engine of Object.values(engines)) await engine.ensureImage(driver, ctx.busybox.archive);
      ctx.log(`memory: ${ctx.runs.heavy} detached containers per engine, ${driver}`);
      for (let i = 0; i < ctx.runs.heavy; i++) {
        for (const name of i % 2 === 0 ? (['nook', 'podman'] as const) : (['podman', 'nook'] as const)) {
          const container = `bench-mem-${driver}-${i}`;
          started[name].push(container);
          samples[name].push(await measureOne(ctx, engines[name], driver, container));
        }
      }
    } finally {
      for (const name of ['nook', 'podman'] as const) {
        if (started[name].length > 0) await runCommand(engines[name].command(driver, ['rm', '-f', ...started[name]]));
      }
    }
    const detail = { nook: breakdown(samples.nook), podman: breakdown(samples.podman) };
    const pss = compareRow({
      group: 'memory',
      name: `PSS per detached container (-p, ${driver})`,
      unit: 'bytes',
      nook: summarize(samples.nook.map((s) => s.pss)),
      podman: summarize(samples.podman.map((s) => s.pss)),
      detail,
    });
    rows.push({ ...pss, goal: atMost(`nook/podman <= ${GOAL}`, pss.ratio, GOAL) });
    const rss = compareRow({
      group: 'memory',
      name: `RSS per detached container (-p, ${driver})`,
      unit: 'bytes',
      nook: summarize(samples.nook.map((s) => s.rss)),
      podman: summarize(samples.podman.map((s) => s.rss)),
    });
    rows.push({ ...rss, goal: atMost(`nook/podman <= ${GOAL}`, rss.ratio, GOAL) });
  }
  return rows;
}
