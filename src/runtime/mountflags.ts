/**
 * mount(2) flags and the OCI mount option words that map to them (as runc's
 * `parseMountOptions`). Words that are not flags go to the data string.
 */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
} as const;

export const MNT_DETACH = 0x2;

/** word -> [set?, flag] ; set=false clears the flag ("rw", "suid"...). */
const FLAG_WORDS: Record<string, [boolean, number]> = {
  ro: [true, MS.RDONLY],
  rw: [false, MS.RDONLY],
  nosuid: [true, MS.NOSUID],
  suid: [false, MS.NOSUID],
  nodev: [true, MS.NODEV],
  dev: [false, MS.NODEV],
  noexec: [true, MS.NOEXEC],
  exec: [false, MS.NOEXEC],
  sync: [true, MS.SYNCHRONOUS],
  async: [false, MS.SYNCHRONOUS],
  dirsync: [true, MS.DIRSYNC],
  remount: [true, MS.REMOUNT],
  mand: [true, MS.MANDLOCK],
  nomand: [false, MS.MANDLOCK],
  atime: [false, MS.NOATIME],
  noatime: [true, MS.NOATIME],
  diratime: [false, MS.NODIRATIME],
  nodiratime: [true, MS.NODIRATIME],
  bind: [true, MS.BIND],
  rbind: [true, MS.BIND | MS.REC],
  relatime: [true, MS.RELATIME],
  norelatime: [false, MS.RELATIME],
  strictatime: [true, MS.STRICTATIME],
  nostrictatime: [false, MS.STRICTATIME],
  nosymfollow: [true, MS.NOSYMFOLLOW],
};

const PROPAGATION_WORDS: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

export interface ParsedMountOptions {
  flags: number;
  /** MS_PRIVATE/MS_SLAVE/... to apply with a second mount call */
  propagation: number;
  data: string;
}

export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const word of options) {
    const flag = FLAG_WORDS[word];
    if (flag) {
      flags = flag[0] ? flags | flag[1] : flags & ~flag[1];
    } else if (PROPAGATION_WORDS[word] !== undefined) {
      propagation |= PROPAGATION_WORDS[word]!;
    } else if (word.startsWith('idmap') || word === 'tmpcopyup' || word === 'z' || word === 'Z' || word === 'U') {
      // podman-level words with no kernel meaning here
    } else {
      data.push(word);
    }
  }
  return { flags, propagation, data: data.join(',') };
}

export function describeMountFlags(flags: number): string {
  const names = Object.entries(MS)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name.toLowerCase());
  return names.length ? names.join(',') : '0';
}
