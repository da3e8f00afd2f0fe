/**
 * The user's subordinate ids, as doctor needs them: the ranges that belong to
 * the user, where they came from, and whether another user's range overlaps
 * (then two users' containers share host ids and can read each other's files).
 *
 * Parsing /etc/subuid and asking `getsubids` is src/idmap's job; this module
 * only judges. It is written against `SubidSource` so that doctor's view of
 * the machine stays injectable.
 */
import type { HostView } from './view.js';

export type SubidKind = 'uid' | 'gid';

export interface SubidRange {
  start: number;
  count: number;
}

export interface SubidEntry extends SubidRange {
  /** the user name or numeric uid as written in the file */
  owner: string;
}

export interface SubidLookup {
  /** 'files': /etc/subuid or /etc/subgid; 'nss': getsubids, where nsswitch.conf serves subid from LDAP/SSSD/FreeIPA */
  source: 'files' | 'nss';
  /** the file read or the command run, for messages */
  origin: string;
  ranges: SubidRange[];
  /** every entry of the database when it can be listed (files only), to find overlaps */
  allEntries: SubidEntry[] | null;
  /** why the lookup itself failed (unreadable file, getsubids missing), null when it worked */
  error: string | null;
}

export interface SubidOverlap {
  kind: SubidKind;
  mine: SubidRange;
  other: SubidEntry;
}

export interface SubidFacts {
  user: string;
  uid: number;
  uids: SubidLookup;
  gids: SubidLookup;
  overlaps: SubidOverlap[];
}

/** The number of ids a typical image needs (0..65535): less and some image files cannot be owned. */
export const fullRangeSize = 65536;

/** Parses subuid/subgid lines: `name:start:count`; comments, blank and malformed lines are skipped. */
export function parseSubidFile(text: string): SubidEntry[] {
  const entries: SubidEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [owner, start, count] = line.split(':');
    if (!owner || !start || !count || !/^\d+$/.test(start) || !/^\d+$/.test(count)) continue;
    entries.push({ owner, start: Number(start), count: Number(count) });
  }
  return entries;
}

/** Parses `getsubids [-g] USER` output: `0: user 100000 65536` per range. */
export function parseGetsubidsOutput(text: string): SubidRange[] {
  const ranges: SubidRange[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*\d+:\s+\S+\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (match) ranges.push({ start: Number(match[1]), count: Number(match[2]) });
  }
  return ranges;
}

/** nsswitch.conf services for the `subid` database, e.g. ['sss']; [] when it is not configured (files). */
export function subidServices(nsswitch: string | null): string[] {
  for (const raw of (nsswitch ?? '').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const match = /^subid:\s*(.*)$/.exec(line);
    if (match) return (match[1] ?? '').split(/\s+/).filter((s) => s && !s.startsWith('['));
  }
  return [];
}

function belongsTo(entry: SubidEntry, user: string | null, uid: number): boolean {
  return entry.owner === user || entry.owner === String(uid);
}

function overlapping(a: SubidRange, b: SubidRange): boolean {
  return a.start < b.start + b.count && b.start < a.start + a.count;
}

async function lookup(view: HostView, kind: SubidKind, user: string | null, nss: boolean): Promise<SubidLookup> {
  if (nss) {
    const getsubids = await view.which('getsubids');
    const origin = `getsubids${kind === 'gid' ? ' -g' : ''} ${user ?? view.uid}`;
    if (!getsubids) return { source: 'nss', origin, ranges: [], allEntries: null, error: 'getsubids is not installed (package uidmap or shadow-utils-subid)' };
    const result = await view.run(getsubids, [...(kind === 'gid' ? ['-g'] : []), user ?? String(view.uid)], { timeoutMs: 5000 });
    // getsubids exits 1 both for "no ranges" and for errors; an empty stdout is "no ranges"
    const ranges = parseGetsubidsOutput(result.stdout);
    const error = result.failure ? `${origin}: ${result.failure}` : null;
    return { source: 'nss', origin, ranges, allEntries: null, error };
  }
  const origin = kind === 'uid' ? '/etc/subuid' : '/etc/subgid';
  const text = await view.readFile(origin);
  if (text === null) {
    const exists = (await view.stat(origin)) !== null;
    return { source: 'files', origin, ranges: [], allEntries: exists ? null : [], error: exists ? `${origin} is not readable` : null };
  }
  const all = parseSubidFile(text);
  const ranges = all.filter((e) => belongsTo(e, user, view.uid)).map(({ start, count }) => ({ start, count }));
  return { source: 'files', origin, ranges, allEntries: all, error: null };
}

function findOverlaps(kind: SubidKind, found: SubidLookup, user: string | null, uid: number): SubidOverlap[] {
  const overlaps: SubidOverlap[] = [];
  for (const other of found.allEntries ?? []) {
    if (belongsTo(other, user, uid)) continue;
    for (const mine of found.ranges) if (overlapping(mine, other)) overlaps.push({ kind, mine, other });
  }
  return overlaps;
}

export async function readSubidFacts(view: HostView): Promise<SubidFacts> {
  const nss = subidServices(await view.readFile('/etc/nsswitch.conf')).some((s) => s !== 'files');
  const user = view.userName;
  const [uids, gids] = await Promise.all([lookup(view, 'uid', user, nss), lookup(view, 'gid', user, nss)]);
  return {
    user: user ?? String(view.uid),
    uid: view.uid,
    uids,
    gids,
    overlaps: [...findOverlaps('uid', uids, user, view.uid), ...findOverlaps('gid', gids, user, view.uid)],
  };
}

export function totalCount(ranges: SubidRange[]): number {
  return ranges.reduce((sum, r) => sum + r.count, 0);
}
