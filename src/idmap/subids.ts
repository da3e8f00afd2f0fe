/**
 * The user's subordinate ids: /etc/subuid and /etc/subgid, or `getsubids`
 * (shadow-utils) where nsswitch.conf serves them from elsewhere (FreeIPA,
 * SSSD, LDAP) and the files say nothing about the user.
 *
 * Lines are `owner:start:count`, the owner being a user name or a numeric
 * uid; a user may have several ranges, used in file order.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { NookError, errnoCode } from '../lib/errors.js';
import { findProgram } from '../lib/programs.js';

export interface SubidRange {
  start: number;
  count: number;
}

export interface UserIdentity {
  /** null when the uid has no passwd entry (a container, some CI runners) */
  name: string | null;
  uid: number;
  gid: number;
}

export interface SubidSources {
  subuidPath?: string;
  subgidPath?: string;
  /**
   * getsubids, or null to never ask it (tests); default: looked up in PATH
   * when nsswitch.conf names a subid service other than files
   */
  getsubidsPath?: string | null;
  /** default /etc/nsswitch.conf */
  nsswitchPath?: string;
}

export interface SubordinateIds {
  uids: SubidRange[];
  gids: SubidRange[];
  /** where each list came from, for messages ("/etc/subuid", "getsubids", or "none") */
  uidSource: string;
  gidSource: string;
}

export function currentUser(): UserIdentity {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  try {
    return { name: userInfo().username, uid, gid };
  } catch {
    return { name: null, uid, gid };
  }
}

const MAX_ID = 0xffffffff;

/** The ranges of `user` in the text of a subuid/subgid file; malformed lines and comments are skipped. */
export function parseSubidFile(text: string, user: Pick<UserIdentity, 'name' | 'uid'>): SubidRange[] {
  const ranges: SubidRange[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    if (fields.length !== 3) continue;
    const [owner, startText, countText] = fields as [string, string, string];
    if (owner !== user.name && owner !== String(user.uid)) continue;
    if (!/^\d+$/.test(startText) || !/^\d+$/.test(countText)) continue;
    const start = Number(startText);
    const count = Number(countText);
    if (count === 0 || start + count - 1 > MAX_ID) continue;
    if (ranges.some((r) => r.start === start && r.count === count)) continue; // listed by name and by uid
    ranges.push({ start, count });
  }
  return ranges;
}

/** `getsubids [-g] USER` prints "0: user 100000 65536" per range. */
export function parseGetsubidsOutput(text: string): SubidRange[] {
  const ranges: SubidRange[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*\d+:\s*\S+\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (match) ranges.push({ start: Number(match[1]), count: Number(match[2]) });
  }
  return ranges.filter((r) => r.count > 0);
}

async function readRangesFromFile(path: string, user: UserIdentity): Promise<SubidRange[]> {
  try {
    return parseSubidFile(readFileSync(path, 'utf8'), user); // small, and on the start path: no thread pool
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw new NookError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

async function askGetsubids(getsubids: string, user: UserIdentity, kind: 'uid' | 'gid'): Promise<SubidRange[]> {
  const { execa } = await import('execa');
  // exits 1 both for "no ranges" and errors: no ranges either way
  const result = await execa(getsubids, [...(kind === 'gid' ? ['-g'] : []), user.name ?? String(user.uid)], { reject: false, timeout: 5000 });
  return parseGetsubidsOutput(result.stdout);
}

/**
 * The `subid:` service of nsswitch.conf (e.g. "sss" for ranges kept in LDAP),
 * or null when there is none: libsubid then reads /etc/subuid and /etc/subgid
 * only, so getsubids could say nothing those files do not.
 */
export function nsswitchSubidService(text: string): string | null {
  for (const raw of text.split('\n')) {
    const match = /^\s*subid\s*:\s*(\S+)/.exec(raw.replace(/#.*/, ''));
    if (match) return match[1]!;
  }
  return null;
}

/** Whether getsubids may know ranges that the files lack: worth its ~5 ms for a user without subordinate ids in the files. */
function subidServiceBeyondFiles(nsswitchPath = '/etc/nsswitch.conf'): boolean {
  let text: string;
  try {
    text = readFileSync(nsswitchPath, 'utf8');
  } catch {
    return false;
  }
  const service = nsswitchSubidService(text);
  return service !== null && service !== 'files';
}

export async function readSubordinateIds(user: UserIdentity = currentUser(), sources: SubidSources = {}): Promise<SubordinateIds> {
  const subuidPath = sources.subuidPath ?? '/etc/subuid';
  const subgidPath = sources.subgidPath ?? '/etc/subgid';
  let [uids, gids] = await Promise.all([readRangesFromFile(subuidPath, user), readRangesFromFile(subgidPath, user)]);
  let uidSource = uids.length ? subuidPath : 'none';
  let gidSource = gids.length ? subgidPath : 'none';
  if (uids.length === 0 || gids.length === 0) {
    const getsubids = sources.getsubidsPath !== undefined ? sources.getsubidsPath : subidServiceBeyondFiles(sources.nsswitchPath) ? findProgram('getsubids') : null;
    if (getsubids) {
      if (uids.length === 0) {
        uids = await askGetsubids(getsubids, user, 'uid');
        if (uids.length) uidSource = 'getsubids';
      }
      if (gids.length === 0) {
        gids = await askGetsubids(getsubids, user, 'gid');
        if (gids.length) gidSource = 'getsubids';
      }
    }
  }
  return { uids, gids, uidSource, gidSource };
}
