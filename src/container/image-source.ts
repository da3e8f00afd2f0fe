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
  /** 'aufs' when some layer keeps .wh. files, which only fuse-overlayfs reads */
  whiteoutFormat: 'overlay' | 'aufs';
  /** the bottom-most layer holds no whiteouts or opaque directories */
  plainBottomLayer: boolean;
  readFile(containerPath: string): string | null;
}

export type PullPolicy = 'missing' | 'always' | 'never';

/**
 * The image for a new container, pulled first when the policy asks for it
 * (podman's --pull: "missing" by default, so `nook run alpine` just works).
 */
export async function openImageForRun(paths: NookPaths, reference: string, pull: PullPolicy = 'missing'): Promise<ImageForRun> {
  const [{ ImageStore }, { readImageFile }, { linuxSyscalls }] = await Promise.all([
    import('../image/store.js'),
    import('../image/layer-files.js'),
    import('../syscalls/syscalls.js'),
  ]);
  const store = new ImageStore(paths);
  const local = await store.findImage(reference);
  if (pull === 'always' || (pull === 'missing' && !local)) {
    if (!local && reference.startsWith('localhost/')) {
      throw new NookError(`${reference}: image not known (localhost/ names are never pulled: nook load, import or tag one)`);
    }
    await pullForRun(paths, reference);
  }
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
    whiteoutFormat: image.whiteoutFormat,
    plainBottomLayer: image.plainBottomLayer,
    // Whiteouts and opaque directories honoured: a file deleted by an upper layer reads as absent.
    readFile: (containerPath) => readImageFile(image.layerDirs, containerPath, syscalls),
  };
}

async function pullForRun(paths: NookPaths, reference: string): Promise<void> {
  const [{ pullImage }, { createProgress, silentProgress }, { withPullDestination }] = await Promise.all([
    import('../image/registry/pull.js'),
    import('../lib/progress.js'),
    import('../image/registry/store-destination.js'),
  ]);
  const progress = process.stderr.isTTY ? createProgress() : silentProgress;
  if (!process.stderr.isTTY) process.stderr.write(`Pulling ${reference}...\n`);
  await withPullDestination({ root: paths.root, runroot: paths.runRoot }, progress, (destination) => pullImage(reference, { destination, progress }));
}
