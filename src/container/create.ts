/**
 * `nook create`: everything up to a container ready to start. The image is
 * resolved, the per-container directories made, the network's files written,
 * and the OCI spec (config.json) saved next to the container's record.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError, wrapError } from '../lib/errors.js';
import type { NookPaths } from '../lib/paths.js';
import type { OciIdMapping, OciSpec } from '../runtime/spec.js';
import type { ContainerOptions } from './options.js';
import { buildSpec, parseEnvFile } from './spec-builder.js';
import { ContainerStore, randomName, type ContainerRecord } from './store.js';
import { openImageForRun } from './image-source.js';

export interface CreateResult {
  record: ContainerRecord;
  spec: OciSpec;
}

export interface CreateContext {
  paths: NookPaths;
  store: ContainerStore;
}

export async function createContainer(options: ContainerOptions, context: CreateContext): Promise<CreateResult> {
  const { paths, store } = context;
  // Validate what the user typed before touching the disk.
  const [network, { resolveSecurity }, idmap, storageChoice] = await Promise.all([
    import('./network-setup.js').then((m) => m.resolveNetwork(options, store)),
    import('./security-setup.js'),
    import('./idmap-setup.js').then((m) => m.resolveIdMappings(options.userns)),
    import('../host/storage-driver.js').then((m) => m.chooseStorageDriver(paths, options.storageDriver ? { requested: options.storageDriver as 'overlay' } : {})),
  ]);
  for (const volume of options.volumes) {
    try {
      statSync(volume.source);
    } catch {
      throw new NookError(`volume source ${volume.source} does not exist (create it first: podman does not create bind-mount sources either)`);
    }
  }
  const envFileEntries = options.envFiles.flatMap((file) => {
    try {
      return parseEnvFile(readFileSync(file, 'utf8'));
    } catch (error) {
      throw wrapError(`--env-file ${file}`, error);
    }
  });

  const cgroups = await import('../cgroups/select.js').then((m) => m.selectCgroups({ ...(options.cgroupManager ? { manager: options.cgroupManager } : {}), ...(options.cgroups ? { cgroups: options.cgroups } : {}), ...(options.cgroupParent ? { parent: options.cgroupParent } : {}) }));
  if (options.resources) {
    const [{ checkLimitsPossible }, { resourcesFromOci }] = await Promise.all([import('../cgroups/manager.js'), import('../cgroups/resources.js')]);
    checkLimitsPossible(resourcesFromOci(options.resources), cgroups.cgroup, cgroups.reason);
  }

  const image = await openImageForRun(paths, options.image, options.pull ?? 'missing');
  const storage =
    image.whiteoutFormat === 'overlay'
      ? storageChoice
      : (await import('../host/storage-driver.js')).driverForWhiteouts(storageChoice, image.whiteoutFormat, storageChoice.facts, options.storageDriver as 'overlay' | undefined);
  const name = options.name ?? uniqueName(store);
  if (options.name !== undefined) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(options.name)) throw new NookError(`invalid container name "${options.name}": use letters, digits, _ . -`);
    if (store.nameTaken(options.name)) throw new NookError(`the container name "${options.name}" is already in use: remove it (nook rm ${options.name}) or choose another name`);
  }

  const id = store.newId();
  const hostname = options.hostname ?? id.slice(0, 12);
  const dataDir = store.dataDir(id);
  const dirs = {
    upper: join(dataDir, 'upper'),
    work: join(dataDir, 'work'),
    merged: join(dataDir, 'merged'),
    userdata: join(dataDir, 'userdata'),
  };
  try {
    for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The merged root must be reachable by the container's other ids.
    mkdirSync(dirs.merged, { mode: 0o755, recursive: true });
    if (storage.driver === 'vfs') {
      const { copyLayersForVfs } = await import('../rootfs/driver.js');
      await copyLayersForVfs(image.layerDirs, dirs.upper, { plainBottomLayer: image.plainBottomLayer });
    }

    const files = await network.files({ hostname, name });
    const generated: Record<string, string> = {};
    for (const [containerPath, content] of [
      ['/etc/hostname', `${hostname}\n`],
      ['/etc/hosts', files.hosts],
      ['/etc/resolv.conf', files.resolvConf],
    ] as const) {
      const hostPath = join(dirs.userdata, containerPath.slice('/etc/'.length));
      writeFileSync(hostPath, content, { mode: 0o644 });
      generated[containerPath] = hostPath;
    }

    const security = resolveSecurity(options, image.config.User);
    const spec = buildSpec({
      options,
      imageConfig: image.config,
      rootPath: dirs.merged,
      hostname,
      uidMappings: idmap.uidMappings,
      gidMappings: idmap.gidMappings,
      generatedFiles: generated,
      readImageFile: image.readFile,
      capabilities: security.capabilities,
      seccomp: security.seccomp,
      network: network.namespace,
      envFileEntries,
      cgroupMount: cgroups.cgroup.manager !== 'none',
      ...(options.init ? { initPath: initBinaryPath() } : {}),
    });
    writeFileSync(join(dataDir, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o600 });

    const record: ContainerRecord = {
      id,
      name,
      image: image.name,
      imageId: image.id,
      command: spec.process!.args,
      created: new Date().toISOString(),
      storageDriver: storage.driver,
      lowerDirs: image.layerDirs,
      status: 'created',
      autoRemove: options.rm,
      detached: options.detach,
      tty: options.tty,
      hostname,
      network: { mode: network.modeText, publish: options.publish },
      ...(image.config.StopSignal ? { stopSignal: image.config.StopSignal } : {}),
      idMappingWarning: idmap.warning,
      cgroup: cgroups.cgroup,
    };
    store.save(record);
    return { record, spec };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

function uniqueName(store: ContainerStore): string {
  for (let i = 0; i < 20; i++) {
    const name = randomName();
    if (!store.nameTaken(name)) return name;
  }
  return `nook_${store.newId().slice(0, 8)}`;
}

export function initBinaryPath(): string {
  return new URL('../../helpers/nook-init', import.meta.url).pathname;
}

export type { OciIdMapping };
