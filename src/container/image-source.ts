/**
 * The container's view of an image: its run config, its extracted layer
 * directories (top-most first, as overlay's lowerdir wants them) and a way to
 * read a file of it (for /etc/passwd lookups) without mounting anything.
 */
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
  const [{ ImageStore }, { readImageFile }, { linuxSyscalls }] = await Promise.all([
    import('../image/store.js'),
    import('../image/layer-files.js'),
    import('../syscalls/syscalls.js'),
  ]);
  const store = new ImageStore(paths);
  let image;
  try {
    image = await store.imageForRun(reference);
  } catch (error) {
    // `rmi` reports a missing image with 1, as podman; for run it is nook's own error.
    if (error instanceof NookError) throw new NookError(error.message, { cause: error, exitCode: ExitCode.Internal });
    throw error;
  }
  const syscalls = await linuxSyscalls();
  return {
    id: image.id,
    name: image.name,
    config: image.config,
    layerDirs: image.layerDirs,
    // Whiteouts and opaque directories honoured: a file deleted by an upper layer reads as absent.
    readFile: (containerPath) => readImageFile(image.layerDirs, containerPath, syscalls),
  };
}
