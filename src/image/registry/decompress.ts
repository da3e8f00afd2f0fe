/**
 * zstd layers: Node 20's zlib has no zstd (it arrives in Node 22.15 / 23.8).
 * The npm bindings (@mongodb-js/zstd, zstd-napi) are native addons whose
 * install downloads a prebuilt binary or needs a compiler, and the pure
 * JavaScript decoders are several times slower than the C one. zstd layers
 * are still rare on registries and the `zstd` program is packaged everywhere,
 * so the store's extraction (../compression.ts) streams through it. A pull
 * checks for it before downloading anything, so that a missing program is
 * one clear line rather than a failure after the download.
 */
import { NookError } from '../../lib/errors.js';
import type { Compression } from './manifest.js';

const ZSTD_MISSING = 'this image has zstd-compressed layers, which need the zstd program: install it (apt-get install zstd, dnf install zstd, apk add zstd)';

/** Fails early (before downloading) when a needed decompressor is missing. */
export async function checkDecompressors(compressions: Iterable<Compression>): Promise<void> {
  if (![...compressions].includes('zstd')) return;
  try {
    // loaded only for zstd images: execa costs ~100 ms of every pull's start otherwise
    const { execa } = await import('execa');
    await execa('zstd', ['--version']);
  } catch (error) {
    throw new NookError(ZSTD_MISSING, { cause: error });
  }
}
