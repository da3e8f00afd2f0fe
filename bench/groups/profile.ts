/**
 * profile: where `nook run --rm --network none busybox true` spends its time,
 * for the work on the start path: Node's own start (`node -e 0`), the CLI's
 * entry (`nook --version`), the whole run, and a CPU profile of the run
 * (`node --cpu-prof`) charged to nook's modules, module loading, dependencies
 * and idle time (waiting for the executor, the container, newuidmap).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { timeChecked, type Command } from '../command.js';
import { paths } from '../checkout.js';
import { type BenchContext } from '../context.js';
import { analyzeProfile, type CpuProfile, type ProfileBreakdown } from '../cpuprofile.js';
import type { Row } from '../report.js';
import { median, summarize } from '../stats.js';

async function repeat(times: number, command: Command): Promise<number[]> {
  await timeChecked(command);
  const samples: number[] = [];
  for (let i = 0; i < times; i++) samples.push(await timeChecked(command));
  return samples;
}

export async function benchProfile(ctx: BenchContext): Promise<Row[]> {
  const driver = 'overlay';
  await ctx.nook.ensureImage(driver, ctx.busybox.archive);
  const run = ctx.nook.run({ image: ctx.busybox.ref, argv: ['true'], driver, rm: true, network: 'none' });
  ctx.log('profile: node, nook --version, nook run');
  const rows: Row[] = [
    { group: 'profile', name: 'node -e 0 (any Node program)', unit: 'seconds', nook: summarize(await repeat(ctx.runs.latency, { file: process.execPath, args: ['-e', '0'], env: ctx.env })) },
    { group: 'profile', name: 'nook --version (+ CLI entry, commander)', unit: 'seconds', nook: summarize(await repeat(ctx.runs.latency, { file: process.execPath, args: [paths.nookMain, '--version'], env: ctx.env })) },
    { group: 'profile', name: 'nook run --rm --network none busybox true', unit: 'seconds', nook: summarize(await repeat(ctx.runs.latency, run)) },
  ];

  // what importing each dependency of the start path costs, above `node -e 0`
  for (const dependency of ['execa', 'commander', 'koffi']) {
    const samples = await repeat(ctx.runs.latency, { file: process.execPath, args: ['--input-type=module', '-e', `await import('${dependency}')`], env: ctx.env, cwd: paths.checkout });
    rows.push({ group: 'profile', name: `node -e "await import('${dependency}')"`, unit: 'seconds', nook: summarize(samples) });
  }

  ctx.log('profile: node --cpu-prof');
  const profiles = Math.min(ctx.runs.latency, 5);
  const breakdowns: ProfileBreakdown[] = [];
  const wall: number[] = [];
  for (let i = 0; i < profiles; i++) {
    const dir = join(ctx.work, `cpuprofile-${i}`);
    wall.push(await timeChecked({ ...run, args: ['--cpu-prof', '--cpu-prof-dir', dir, ...run.args] }));
    const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length !== 1) throw new Error(`expected one CPU profile in ${dir}, found ${files.length}`);
    breakdowns.push(analyzeProfile(JSON.parse(await readFile(join(dir, files[0]!), 'utf8')) as CpuProfile));
    await rm(dir, { recursive: true, force: true });
  }
  const categories = [...new Set(breakdowns.flatMap((b) => Object.keys(b.categories)))];
  const perCategory = categories
    .map((category) => ({ category, summary: summarize(breakdowns.map((b) => b.categories[category] ?? 0)) }))
    .sort((a, b) => b.summary.median - a.summary.median);
  rows.push({ group: 'profile', name: 'with --cpu-prof: wall time', unit: 'seconds', nook: summarize(wall) });
  rows.push({ group: 'profile', name: 'with --cpu-prof: profile span (bootstrap end to exit)', unit: 'seconds', nook: summarize(breakdowns.map((b) => b.duration)) });
  const until = breakdowns.map((b) => b.untilExecutor).filter((v): v is number => v !== undefined);
  if (until.length > 0) rows.push({ group: 'profile', name: 'with --cpu-prof: until the first sample in runtime/executor.js', unit: 'seconds', nook: summarize(until) });
  for (const { category, summary } of perCategory) {
    if (summary.median < 0.0005) continue;
    rows.push({ group: 'profile', name: `  self time: ${category}`, unit: 'seconds', nook: summary });
  }
  rows[rows.length - 1]!.detail = {
    profiledRuns: profiles,
    categoriesMedianSeconds: Object.fromEntries(perCategory.map((c) => [c.category, median(c.summary.samples)])),
    topFunctionsOfFirstProfile: breakdowns[0]?.topFunctions,
  };
  return rows;
}
