/**
 * The container's view of an image: its run config, its extracted layer
 * directories (top-most first, as overlay's lowerdir wants them) and a way to
 * read a file of it (for /etc/passwd lookups) without mounting anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode, NookError } from '../lib/errors.js';
import type { NookPaths } from '../lib/paths.js';
import type { ImageRunConfig } from './spec-builder.js';

export interface ImageForRun {
  id: string;
  name: string;
  config: ImageRunConfig;
  layerDirs: string[];
  readFile(containerPath: string): string | null;
}

export async function openImageForRun(paths: NookPaths, reference: string): Promise<ImageForRun> {
  const { ImageStore } = await import('../image/store.js');
  const store = new ImageStore(paths);
  let image;
  try {
    image = await store.imageForRun(reference);
  } catch (error) {
    // `rmi` reports a missing image with 1, as podman; for run it is nook's own error.
    if (error instanceof NookError) throw new NookError(error.message, { cause: error, exitCode: ExitCode.Internal });
    throw error;
  }
  return {
    id: image.id,
    name: image.name,
    config: image.config,
    layerDirs: image.layerDirs,
    readFile: (containerPath) => readFromLayers(image.layerDirs, containerPath),
  };
}

/** The top-most layer that has the file wins; a whiteout above hides it. */
export function readFromLayers(layerDirs: string[], containerPath: string): string | null {
  const relative = containerPath.replace(/^\/+/, '');
  for (const dir of layerDirs) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) {
      try {
        return readFileSync(candidate, 'utf8');
      } catch {
        return null;
      }
    }
  }
  return null;
}
