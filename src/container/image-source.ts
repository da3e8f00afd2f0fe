/**
 * The container's view of an image: its run config, its extracted layer
 * directories (top-most first, as overlay's lowerdir wants them) and a way to
 * read a file of it (for /etc/passwd lookups) without mounting anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
  const image = await store.imageForRun(reference);
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
