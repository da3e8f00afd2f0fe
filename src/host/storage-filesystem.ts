/**
 * The filesystem under nook's storage root. Network and cluster filesystems
 * (NFS, Lustre, GPFS, CIFS) check permissions on the server against the host
 * uid the client sends: files owned by subordinate ids cannot be created, and
 * none of them supports overlay's upper directory. HPC and university homes
 * are the usual victims; the fix is a storage root on a local disk.
 */
import { dirname } from 'node:path';
import type { HostView } from './view.js';

/** statfs f_type magic numbers (linux/magic.h) nook cares to name */
export const filesystemNames: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x0bd00bd0, 'lustre'],
  [0x47504653, 'gpfs'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x65735546, 'fuse'],
  [0x01021994, 'tmpfs'],
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x2fc12fc1, 'zfs'],
  [0x794c7630, 'overlay'],
  [0x00c36400, 'ceph'],
  [0x6a656a63, 'beegfs'],
  [0x19830326, 'fhgfs'],
]);

/** Filesystems where rootless container storage does not work. */
const networkFilesystems = new Set(['nfs', 'lustre', 'gpfs', 'cifs', 'smb2', 'ceph', 'beegfs', 'fhgfs']);

export function filesystemName(type: number): string {
  return filesystemNames.get(type) ?? `0x${type.toString(16)}`;
}

export function isNetworkFilesystem(type: number): boolean {
  return networkFilesystems.has(filesystemNames.get(type) ?? '');
}

export interface StorageFilesystemFacts {
  /** the storage root as configured */
  root: string;
  /** the path actually examined: the root, or its nearest existing ancestor before the first pull creates it */
  examined: string;
  exists: boolean;
  type: number | null;
  name: string | null;
  network: boolean;
  /** the user can create files there (the root, or the ancestor that mkdir -p would write into) */
  writable: boolean;
}

export async function readStorageFilesystemFacts(view: HostView, root: string): Promise<StorageFilesystemFacts> {
  let examined = root;
  for (;;) {
    const fs = await view.statfs(examined);
    if (fs) {
      const writable = await view.access(examined, 'w');
      return { root, examined, exists: examined === root, type: fs.type, name: filesystemName(fs.type), network: isNetworkFilesystem(fs.type), writable };
    }
    const parent = dirname(examined);
    if (parent === examined) return { root, examined, exists: false, type: null, name: null, network: false, writable: false };
    examined = parent;
  }
}
