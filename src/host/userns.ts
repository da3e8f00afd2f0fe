/**
 * Can this user create a user namespace? Three distribution knobs can say no,
 * and a seccomp filter (a container host, a sandbox) can too, so besides
 * reading the knobs we try it for real with util-linux `unshare`, which is
 * single-threaded and therefore a faithful stand-in for nook's executor.
 */
import type { HostView } from './view.js';

export interface UserNamespaceFacts {
  /** /proc/sys/user/max_user_namespaces (0 disables user namespaces) */
  maxUserNamespaces: number | null;
  /** /proc/sys/kernel/unprivileged_userns_clone: Debian before 11 and older Ubuntu kernels; null when absent */
  unprivilegedUsernsClone: number | null;
  /** /proc/sys/kernel/apparmor_restrict_unprivileged_userns: Ubuntu 23.10+; null when absent */
  apparmorRestrict: number | null;
  /** AppArmor is enabled in the kernel (the restriction only bites then) */
  apparmorEnabled: boolean;
  /** the result of `unshare --user --map-root-user true`, null when unshare is not installed */
  probe: { ok: boolean; message: string } | null;
}

async function readNumber(view: HostView, path: string): Promise<number | null> {
  const text = await view.readFile(path);
  if (text === null) return null;
  const value = Number.parseInt(text.trim(), 10);
  return Number.isNaN(value) ? null : value;
}

export async function readUserNamespaceFacts(view: HostView): Promise<UserNamespaceFacts> {
  const [maxUserNamespaces, unprivilegedUsernsClone, apparmorRestrict, apparmorEnabledText, unshare] = await Promise.all([
    readNumber(view, '/proc/sys/user/max_user_namespaces'),
    readNumber(view, '/proc/sys/kernel/unprivileged_userns_clone'),
    readNumber(view, '/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
    view.readFile('/sys/module/apparmor/parameters/enabled'),
    view.which('unshare'),
  ]);
  let probe: UserNamespaceFacts['probe'] = null;
  if (unshare) {
    // Writing a uid_map is where the AppArmor restriction shows (the namespace gets no capabilities).
    const result = await view.run(unshare, ['--user', '--map-root-user', 'true'], { timeoutMs: 3000 });
    probe = result.exitCode === 0 ? { ok: true, message: 'unshare --user works' } : { ok: false, message: firstLine(result.stderr) || result.failure || `exit status ${result.exitCode}` };
  }
  return {
    maxUserNamespaces,
    unprivilegedUsernsClone,
    apparmorRestrict,
    apparmorEnabled: apparmorEnabledText?.trim() === 'Y',
    probe,
  };
}

export function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
}

export interface UnshareToolFacts {
  path: string | null;
  /** [major, minor] of util-linux, from `unshare --version` ("unshare from util-linux 2.38.1") */
  version: [number, number] | null;
  versionText: string | null;
}

export function parseUtilLinuxVersion(output: string): [number, number] | null {
  const match = /util-linux\s+(\d+)\.(\d+)/.exec(output);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/** util-linux unshare: the image store maps subordinate ids with its --map-users (2.38+). */
export async function readUnshareToolFacts(view: HostView): Promise<UnshareToolFacts> {
  const path = await view.which('unshare');
  if (!path) return { path: null, version: null, versionText: null };
  const result = await view.run(path, ['--version'], { timeoutMs: 2000 });
  const version = parseUtilLinuxVersion(result.stdout);
  return { path, version, versionText: version ? `${version[0]}.${version[1]}` : null };
}
