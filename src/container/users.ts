/**
 * `-u user[:group]` and the image's User, resolved against the container's
 * own /etc/passwd and /etc/group (never the host's), as podman does.
 */
import { NookError } from '../lib/errors.js';

/** Reads a file of the container's image by its path inside the container, or null if absent. */
export type ContainerFileReader = (containerPath: string) => string | null;

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string | undefined;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

function parsePasswd(text: string | null): PasswdEntry[] {
  if (!text) return [];
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }];
  });
}

function parseGroup(text: string | null): GroupEntry[] {
  if (!text) return [];
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: f[3] ? f[3].split(',') : [] }];
  });
}

const isNumeric = (text: string) => /^\d+$/.test(text);

export function resolveUser(spec: string, readFile: ContainerFileReader): ResolvedUser {
  const [userPart, groupPart] = spec.includes(':') ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)] : [spec, undefined];
  const passwd = parsePasswd(readFile('/etc/passwd'));
  const groups = parseGroup(readFile('/etc/group'));

  let uid = 0;
  let gid = 0;
  let home: string | undefined = '/root';
  let name: string | undefined = 'root';
  if (userPart) {
    const entry = isNumeric(userPart) ? passwd.find((p) => p.uid === Number(userPart)) : passwd.find((p) => p.name === userPart);
    if (!entry && !isNumeric(userPart)) throw new NookError(`unable to find user ${userPart}: no matching entries in the container's /etc/passwd`);
    uid = entry?.uid ?? Number(userPart);
    gid = entry?.gid ?? 0;
    home = entry?.home ?? '/';
    name = entry?.name;
  } else {
    const root = passwd.find((p) => p.uid === 0);
    home = root?.home ?? '/root';
  }
  if (groupPart) {
    const group = isNumeric(groupPart) ? groups.find((g) => g.gid === Number(groupPart)) : groups.find((g) => g.name === groupPart);
    if (!group && !isNumeric(groupPart)) throw new NookError(`unable to find group ${groupPart}: no matching entries in the container's /etc/group`);
    gid = group?.gid ?? Number(groupPart);
  }
  const additionalGids = name ? groups.filter((g) => g.members.includes(name!) && g.gid !== gid).map((g) => g.gid) : [];
  return { uid, gid, additionalGids, home };
}
