/**
 * Turning a layer blob into a tar stream: gzip through zlib, uncompressed
 * as it is, zstd through the `zstd` program.
 *
 * Why a program for zstd: Node 20's zlib has no zstd (it arrives in Node 22.15
 * / 23.8). The npm bindings (@mongodb-js/zstd, zstd-napi) are native addons
 * whose install downloads a prebuilt binary or needs a compiler, and the pure
 * JavaScript decoders are several times slower than the C one. zstd layers are
 * still rare on registries, and the `zstd` command is packaged everywhere (it
 * is also what podman's hosts have), so nook streams through it and, when it
 * is missing, says which package to install before any byte is downloaded.
 */
import { createGunzip } from 'node:zlib';
import { PassThrough, type Duplex } from 'node:stream';
import { execa } from 'execa';
import { NookError } from '../../lib/errors.js';
import type { Compression } from './manifest.js';

const ZSTD_MISSING = 'this image has zstd-compressed layers, which need the zstd program: install it (apt-get install zstd, dnf install zstd, apk add zstd)';

/** A stream from the compressed blob to the plain tar. */
export function decompressor(compression: Compression): Duplex {
  switch (compression) {
    case 'gzip':
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 256 * 1024 });
    case 'zstd': {
      const child = execa('zstd', ['-d', '-c', '-q'], { buffer: false, stderr: 'pipe' });
      const stream = child.duplex();
      child.catch((error: unknown) => {
        const code = (error as { code?: string }).code;
        stream.destroy(code === 'ENOENT' ? new NookError(ZSTD_MISSING, { cause: error }) : new NookError(`zstd could not decompress a layer: ${(error as { stderr?: string }).stderr?.trim() || String(error)}`, { cause: error }));
      });
      return stream;
    }
  }
}

/** Fails early (before downloading) when a needed decompressor is missing. */
export async function checkDecompressors(compressions: Iterable<Compression>): Promise<void> {
  if (![...compressions].includes('zstd')) return;
  try {
    await execa('zstd', ['--version']);
  } catch (error) {
    throw new NookError(ZSTD_MISSING, { cause: error });
  }
}
