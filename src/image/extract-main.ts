/**
 * The layer extraction helper: `node extract-main.js` run by ./extract.ts as
 * root of nook's user namespace (see ./userns.ts). Reads one JSON job on
 * stdin, unpacks each layer into its (empty) target directory and writes one
 * JSON line per layer on stdout; stops at the first failure. It runs as a
 * separate process because a Node process cannot enter a user namespace.
 */
import { linuxSyscalls } from '../syscalls/syscalls.js';
import { openDecompressed } from './compression.js';
import { DigestStream } from './digest.js';
import { currentIdRanges, unpackLayer, type UnpackResult } from './unpack.js';

export interface ExtractJob {
  layers: { blob: string; target: string; what: string }[];
  ignoreChownErrors: boolean;
  unmappedHint: string;
}

export type ExtractReport =
  | { index: number; ok: true; diffId: string; size: number; result: UnpackResult }
  | { index: number; ok: false; message: string }
  /** bytes of uncompressed tar read so far, every 250 ms while a layer is being extracted */
  | { index: number; progress: number };

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

async function main(): Promise<void> {
  const job = JSON.parse(await readStdin()) as ExtractJob;
  const syscalls = await linuxSyscalls();
  const ranges = currentIdRanges();
  for (const [index, layer] of job.layers.entries()) {
    let report: ExtractReport;
    const { stream } = openDecompressed(layer.blob, layer.what);
    const digest = new DigestStream();
    const ticker = setInterval(() => process.stdout.write(`${JSON.stringify({ index, progress: digest.size })}\n`), 250);
    try {
      const hashed = stream.pipe(digest);
      stream.on('error', (error) => digest.destroy(error));
      const result = await unpackLayer(hashed, layer.target, {
        what: layer.what,
        syscalls,
        chown: true,
        uidRanges: ranges.uids,
        gidRanges: ranges.gids,
        ignoreChownErrors: job.ignoreChownErrors,
        unmappedHint: job.unmappedHint,
      });
      // readTar read the stream to its end, so the digest covers every byte
      report = { index, ok: true, diffId: digest.digest(), size: digest.size, result };
    } catch (error) {
      stream.destroy();
      const message = error instanceof Error ? error.message : String(error);
      report = { index, ok: false, message: message.split('\n')[0]! };
    } finally {
      clearInterval(ticker);
    }
    process.stdout.write(`${JSON.stringify(report)}\n`);
    if (!('ok' in report) || !report.ok) break;
  }
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ index: -1, ok: false, message: error instanceof Error ? error.message : String(error) })}\n`);
  process.exitCode = 1;
});
