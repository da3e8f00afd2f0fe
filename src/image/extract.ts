/**
 * The parent side of layer extraction: hands a job to ./extract-main.ts
 * running in nook's user namespace and collects its per-layer reports. For a
 * layer whose blob is still being downloaded, the helper is told on its stdin
 * how the file grows (./growing-file.ts).
 */
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { NookError } from '../lib/errors.js';
import { timingOrigin } from '../lib/timing.js';
import type { ExtractJob, ExtractReport, GrowthLine } from './extract-main.js';
import type { GrowingFile } from './growing-file.js';
import type { NamespaceRunner } from './userns.js';

// The helper's launcher (src/cli/extract-main.cts: its bundle with a code cache, or
// ./extract-main.ts itself), through the parent directory: the same path from the CLI's bundle.
const extractMain = fileURLToPath(new URL('../cli/extract-main.cjs', import.meta.url));

export type FinalReport = Extract<ExtractReport, { ok: boolean }>;

let niceProgram: string | null | undefined;

/**
 * The helper's command line. A helper with a niceness (a pull's smaller
 * layers) starts under `nice`: it sets its priority itself too, but only
 * after Node's start (~100 ms of CPU), which competes with the start of the
 * helper that the pull waits for most. A first layer said to be gzip has the
 * helper start its decompression thread before anything else
 * (src/cli/extract-main.cts).
 */
function helperArgv(job: ExtractJob): string[] {
  const helper = [process.execPath, extractMain, ...(job.layers[0]?.compression === 'gzip' ? ['--prestart-gunzip'] : [])];
  if (job.nice !== undefined) {
    niceProgram ??= ['/usr/bin/nice', '/bin/nice'].find((path) => existsSync(path)) ?? null;
    if (niceProgram) return [niceProgram, '-n', String(job.nice), ...helper];
  }
  return helper;
}

/**
 * Runs the job; `onReport` sees each layer's report as soon as it is done
 * (progress). `growing[i]` is the file of job layer i when that layer is
 * marked `growing`. Returns all reports; the last one is a failure if any failed.
 */
export async function runExtraction(
  runner: NamespaceRunner,
  job: ExtractJob,
  onReport?: (report: ExtractReport) => void,
  growing: (GrowingFile | undefined)[] = [],
): Promise<FinalReport[]> {
  const reports: FinalReport[] = [];
  const input = new PassThrough();
  const origin = timingOrigin();
  input.write(`${JSON.stringify(origin === undefined ? job : { ...job, timingOrigin: origin })}\n`);
  let open = 0;
  const unfollow: (() => void)[] = [];
  for (const [index, file] of growing.entries()) {
    if (!file || !job.layers[index]?.growing) continue;
    open++;
    unfollow.push(
      file.follow((growth) => {
        if (input.writableEnded) return;
        input.write(`${JSON.stringify({ index, growth } satisfies GrowthLine)}\n`);
        if (!('available' in growth) && --open === 0) input.end();
      }),
    );
  }
  if (open === 0) input.end();
  try {
    const result = await runner.run(helperArgv(job), {
      input,
      onStdoutLine: (line) => {
        let report: ExtractReport;
        try {
          report = JSON.parse(line) as ExtractReport;
        } catch {
          return;
        }
        if (!('ok' in report)) {
          onReport?.(report);
          return;
        }
        reports.push(report);
        onReport?.(report);
      },
    });
    // NOOK_TIMING=1: the helper's marks, on the parent's clock
    if (origin !== undefined) for (const line of result.stderr.split('\n')) if (line.startsWith('[timing]')) process.stderr.write(`${line}\n`);
    if (reports.length === 0 || (result.exitCode !== 0 && reports.every((r) => 'ok' in r && r.ok))) {
      const reason = result.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit status ${result.exitCode}`;
      throw new NookError(`layer extraction failed: ${reason}`, { detail: result.stderr });
    }
    return reports;
  } finally {
    for (const stop of unfollow) stop();
    input.end();
  }
}
