/**
 * `nook update`: new limits merged into the container's config.json (so the
 * next start keeps them) and, when it runs, applied to its cgroup at once.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../lib/errors.js';
import type { OciSpec } from '../runtime/spec.js';
import type { ContainerRecord, ContainerStore } from '../container/store.js';
import { checkLimitsPossible } from './manager.js';
import { mergeOciResources, parseResourceFlags, resourcesFromOci, type OciResources, type ResourceFlags } from './resources.js';
import { updateCgroup } from './container.js';

export async function updateContainerResources(store: ContainerStore, record: ContainerRecord, flags: ResourceFlags): Promise<OciResources> {
  const update = parseResourceFlags(flags, { update: true });
  if (!update) throw new NookError('nothing to update: give --memory, --cpus, --pids-limit or another limit');
  const configPath = join(store.dataDir(record.id), 'config.json');
  const spec = JSON.parse(readFileSync(configPath, 'utf8')) as OciSpec;
  const merged = mergeOciResources(spec.linux?.resources as OciResources | undefined, update);
  checkLimitsPossible(resourcesFromOci(merged), record.cgroup ?? { manager: 'none', controllers: [] }, 'the container was created without a cgroup manager');

  const live = store.refreshStatus(record);
  if (live.status === 'running') await updateCgroup(live.cgroup, merged, live.name);

  const updated: OciSpec = { ...spec, linux: { ...spec.linux, resources: merged as Record<string, unknown> } };
  const tmp = `${configPath}.${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(updated, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, configPath);
  return merged;
}
