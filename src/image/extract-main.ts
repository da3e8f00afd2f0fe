/**
 * The layer extraction helper: `node extract-main.js` run by ./extract.ts as
 * root of nook's user namespace (see ./userns.ts). Reads one JSON job as the
 * first line of stdin, unpacks each layer into its (empty) target directory
 * and writes one JSON line per layer on stdout; stops at the first failure.
 * It runs as a separate process because a Node process cannot enter a user
 * namespace.
 *
 * A layer marked `growing` is a blob still being downloaded: the lines after
 * the job say how much of it is written (./growing-file.ts), and it is
 * extracted as it arrives. The parent checks the blob's digest when the
 * download ends and only then keeps what was extracted.
 */
import { statSync } from 'node:fs';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { countFrom, mark, now } from '../lib/timing.js';
import { linuxSyscalls } from '../syscalls/syscalls.js';
import { readDecompressed } from './compression.js';
import { GrowingFile, type GrowthEvent } from './growing-file.js';
import { currentIdRanges, unpackLayer, type UnpackResult } from './unpack.js';

export interface ExtractJob {
  /** `compression`: what the media type says (the content's magic bytes decide) */
  layers: { blob: string; target: string; what: string; growing?: boolean; compression?: string }[];
  ignoreChownErrors: boolean;
  unmappedHint: string;
  /** niceness to run at (layers extracted in the background of a bigger one) */
  nice?: number;
  /** NOOK_TIMING=1: the parent's start (ms since the epoch), which the helper's marks count from */
  timingOrigin?: number;
}

/** Lines after the job on stdin: how a growing blob grows. */
export interface GrowthLine {
  index: number;
  growth: GrowthEvent;
}

export type ExtractReport =
  | { index: number; ok: true; diffId: string; size: number; result: UnpackResult }
  | { index: number; ok: false; message: string }
  /** bytes of uncompressed tar read so far, every 250 ms while a layer is being extracted */
  | { index: number; progress: number };

/** Reads the job, then keeps applying growth lines to the layers' files until stdin ends. */
async function readJob(): Promise<{ job: ExtractJob; files: GrowingFile[] }> {
  const started = now();
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error('no job on standard input');
  const job = JSON.parse(first.value as string) as ExtractJob;
  if (job.timingOrigin !== undefined) {
    countFrom(job.timingOrigin);
    mark(`extraction helper ${process.pid}: process start`, 0);
    mark(`extraction helper ${process.pid}: waiting for its job`, started);
    mark(`extraction helper ${process.pid}: job read`);
  }
  const files = job.layers.map((layer) => (layer.growing ? new GrowingFile() : GrowingFile.complete(statSync(layer.blob).size)));
  void (async () => {
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const line = JSON.parse(next.value as string) as GrowthLine;
      files[line.index]?.apply(line.growth);
    }
    // the parent stopped (the download failed, or nook is exiting): whatever was not complete never will be
    for (const [index, file] of files.entries()) file.fail(new Error(`the download of ${job.layers[index]!.what} stopped`));
  })();
  return { job, files };
}

async function main(): Promise<void> {
  const { job, files } = await readJob();
  process.umask(0);
  if (job.nice !== undefined) {
    try {
      setPriority(job.nice);
    } catch {
      // only a matter of speed
    }
  }
  // koffi (mknod, xattrs, statfs) loads while the first layer's decompression thread starts
  const syscallsLoading = linuxSyscalls();
  syscallsLoading.catch(() => undefined);
  const ranges = currentIdRanges();
  for (const [index, layer] of job.layers.entries()) {
    let report: ExtractReport;
    let size = 0;
    const ticker = setInterval(() => process.stdout.write(`${JSON.stringify({ index, progress: size })}\n`), 250);
    const content = readDecompressed(layer.blob, files[index]!, layer.what);
    const chunks = startedNow(content.chunks);
    try {
      const syscalls = await syscallsLoading;
      const counted = (async function* () {
        for await (const chunk of chunks) {
          if (size === 0) mark(`extraction helper ${process.pid}: first data of ${layer.what}`);
          size += chunk.length;
          yield chunk;
        }
      })();
      const result = await unpackLayer(counted, layer.target, {
        what: layer.what,
        syscalls,
        chown: true,
        uidRanges: ranges.uids,
        gidRanges: ranges.gids,
        ignoreChownErrors: job.ignoreChownErrors,
        unmappedHint: job.unmappedHint,
      });
      // readTar read the stream to its end, so the digest covers every byte
      report = { index, ok: true, diffId: content.digest(), size, result };
    } catch (error) {
      await content.chunks.return(undefined).catch(() => undefined);
      const message = error instanceof Error ? error.message : String(error);
      report = { index, ok: false, message: message.split('\n')[0]! };
    } finally {
      clearInterval(ticker);
    }
    mark(`extraction helper ${process.pid}: ${layer.what} done`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    if (!('ok' in report) || !report.ok) break;
  }
  // growth lines may still be coming: do not wait for stdin to end
  process.exit();
}

/** `source`, already asked for its first item: whatever it starts (a thread) starts now. */
function startedNow<T>(source: AsyncGenerator<T>): AsyncGenerator<T> {
  const first = source.next();
  first.catch(() => undefined); // seen when the result is iterated
  return (async function* () {
    const head = await first;
    if (head.done) return;
    yield head.value;
    yield* source;
  })();
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ index: -1, ok: false, message: error instanceof Error ? error.message : String(error) })}\n`);
  process.exit(1);
});
