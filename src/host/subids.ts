/**
 * The user's subordinate ids, as doctor needs them: the ranges that belong to
 * the user, where they came from, and whether another user's range overlaps
 * (then two users' containers share host ids and can read each other's files).
 *
 * Parsing is src/idmap's (the same rules the runtime applies); this module
 * reads through the HostView, so that doctor's unit tests can describe any
 * machine, and follows the runtime's order: the files first, then
 * `getsubids` when they say nothing about the user.
 */
import { parseGetsubidsOutput, parseSubidFile, type SubidRange } from '../idmap/subids.js';
import type { HostView } from './view.js';

export type { SubidRange } from '../idmap/subids.js';

export type SubidKind = 'uid' | 'gid';

export interface SubidEntry extends SubidRange {
  /** the user name or numeric uid as written in the file */
  owner: string;
}

export interface SubidLookup {
  /** 'files': /etc/subuid or /etc/subgid; 'nss': getsubids (nsswitch.conf's subid service: LDAP, SSSD, FreeIPA) */
  source: 'files' | 'nss';
  /** the file read or the command run, for messages */
  origin: string;
  ranges: SubidRange[];
  /** every entry of the file, to find overlaps; null when the ranges came from getsubids (it cannot list others) */
  allEntries: SubidEntry[] | null;
  /** why the lookup itself failed (unreadable file, getsubids missing where nsswitch needs it), null when it worked */
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

/** Every entry of a subid file, each owner's ranges parsed by idmap's rules. */
function allEntriesOf(text: string): SubidEntry[] {
  const owners = new Set(text.split('\n').map((line) => line.trim().split(':')[0] ?? '').filter((o) => o && !o.startsWith('#')));
  // uid -1 matches no numeric owner: each owner is matched by the name field alone
  return [...owners].flatMap((owner) => parseSubidFile(text, { name: owner, uid: -1 }).map((range) => ({ owner, ...range })));
}

async function askGetsubids(view: HostView, kind: SubidKind, user: string | null, required: boolean): Promise<SubidLookup | null> {
  const origin = `getsubids${kind === 'gid' ? ' -g' : ''} ${user ?? view.uid}`;
  const getsubids = await view.which('getsubids');
  if (!getsubids) return required ? { source: 'nss', origin, ranges: [], allEntries: null, error: 'getsubids is not installed, and nsswitch.conf serves subordinate ids from another service' } : null;
  const result = await view.run(getsubids, [...(kind === 'gid' ? ['-g'] : []), user ?? String(view.uid)], { timeoutMs: 5000 });
  // getsubids exits 1 both for "no ranges" and for errors; an empty stdout is "no ranges"
  const ranges = parseGetsubidsOutput(result.stdout);
  if (ranges.length === 0 && !required) return null;
  return { source: 'nss', origin, ranges, allEntries: null, error: result.failure ? `${origin}: ${result.failure}` : null };
}

async function lookup(view: HostView, kind: SubidKind, user: string | null, nss: boolean): Promise<SubidLookup> {
  const origin = kind === 'uid' ? '/etc/subuid' : '/etc/subgid';
  const text = await view.readFile(origin);
  const exists = text !== null || (await view.stat(origin)) !== null;
  const all = text === null ? [] : allEntriesOf(text);
  const ranges = text === null ? [] : parseSubidFile(text, { name: user, uid: view.uid });
  if (ranges.length > 0) return { source: 'files', origin, ranges, allEntries: all, error: null };
  // the runtime stops at a file it cannot read, so doctor does too
  if (text === null && exists) return { source: 'files', origin, ranges: [], allEntries: null, error: `${origin} is not readable` };
  // as the runtime does: the files say nothing about the user, so ask getsubids
  const fromNss = await askGetsubids(view, kind, user, nss);
  if (fromNss) return fromNss;
  return { source: 'files', origin, ranges: [], allEntries: all, error: null };
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
