/**
 * The parent side of layer extraction: hands a job to ./extract-main.ts
 * running in nook's user namespace and collects its per-layer reports.
 */
import { fileURLToPath } from 'node:url';
import { NookError } from '../lib/errors.js';
import type { ExtractJob, ExtractReport } from './extract-main.js';
import type { NamespaceRunner } from './userns.js';

// Through the parent directory: the same path from the CLI's bundle in dist/src/cli/.
const extractMain = fileURLToPath(new URL('../image/extract-main.js', import.meta.url));

/**
 * Runs the job; `onReport` sees each layer's report as soon as it is done
 * (progress). Returns all reports; the last one is a failure if any failed.
 */
export type FinalReport = Extract<ExtractReport, { ok: boolean }>;

export async function runExtraction(runner: NamespaceRunner, job: ExtractJob, onReport?: (report: ExtractReport) => void): Promise<FinalReport[]> {
  const reports: FinalReport[] = [];
  const result = await runner.run([process.execPath, extractMain], {
    input: JSON.stringify(job),
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
  if (reports.length === 0 || (result.exitCode !== 0 && reports.every((r) => 'ok' in r && r.ok))) {
    const reason = result.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit status ${result.exitCode}`;
    throw new NookError(`layer extraction failed: ${reason}`, { detail: result.stderr });
  }
  return reports;
}
