/**
 * The facts of one doctor or info run, each gathered at most once however
 * many checks ask for it (several checks need the cgroup facts, the subids,
 * the storage probe). One instance per run: nothing outlives it.
 */
import type { NookPaths } from '../lib/paths.js';
import { readCgroupFacts, type CgroupFacts } from './cgroup-manager.js';
import { readDistribution, type Distribution } from './distribution.js';
import { readIdMapHelperFacts, type IdMapHelperFacts } from './idmap-helpers.js';
import { readNetworkFacts, type NetworkFacts } from './network-mode.js';
import { readStorageFacts, type StorageFacts } from './storage-driver.js';
import { readStorageFilesystemFacts, type StorageFilesystemFacts } from './storage-filesystem.js';
import { readSubidFacts, type SubidFacts } from './subids.js';
import { readUnshareToolFacts, readUserNamespaceFacts, type UnshareToolFacts, type UserNamespaceFacts } from './userns.js';
import type { HostView } from './view.js';

export interface HostFactsOptions {
  /** probe the kernel overlay again instead of trusting the cached answer */
  refreshProbes?: boolean;
  /** the executor's path, for the AppArmor profile */
  executorPath: string;
}

export class HostFacts {
  private readonly memo = new Map<string, Promise<unknown>>();

  constructor(
    readonly view: HostView,
    readonly paths: NookPaths,
    readonly options: HostFactsOptions,
  ) {}

  private once<T>(key: string, compute: () => Promise<T>): Promise<T> {
    let pending = this.memo.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = compute();
      this.memo.set(key, pending);
    }
    return pending;
  }

  /** the user's name for messages and fix commands */
  get user(): string {
    return this.view.userName ?? String(this.view.uid);
  }

  userNamespaces(): Promise<UserNamespaceFacts> {
    return this.once('userns', () => readUserNamespaceFacts(this.view));
  }
  unshareTool(): Promise<UnshareToolFacts> {
    return this.once('unshare', () => readUnshareToolFacts(this.view));
  }
  subids(): Promise<SubidFacts> {
    return this.once('subids', () => readSubidFacts(this.view));
  }
  idMapHelper(name: 'newuidmap' | 'newgidmap'): Promise<IdMapHelperFacts> {
    return this.once(name, () => readIdMapHelperFacts(this.view, name));
  }
  storage(): Promise<StorageFacts> {
    return this.once('storage', () => readStorageFacts(this.paths, this.view, this.options.refreshProbes ?? false));
  }
  storageFilesystem(): Promise<StorageFilesystemFacts> {
    return this.once('storage-fs', () => readStorageFilesystemFacts(this.view, this.paths.root));
  }
  network(): Promise<NetworkFacts> {
    return this.once('network', () => readNetworkFacts(this.view));
  }
  cgroups(): Promise<CgroupFacts> {
    return this.once('cgroups', () => readCgroupFacts(this.view));
  }
  distribution(): Promise<Distribution> {
    return this.once('distribution', () => readDistribution(this.view));
  }
}
