/**
 * Doctor checks about identity: user namespaces, subordinate ids, and the
 * setuid helpers that map them.
 */
import { installCommand } from './distribution.js';
import { ok, problem, type Check, type CheckResult } from './check.js';
import type { HostFacts } from './facts.js';
import { helperHasCapability } from './idmap-helpers.js';
import { fullRangeSize, totalCount, type SubidEntry, type SubidKind, type SubidLookup, type SubidRange } from './subids.js';

const sysctlFix = (key: string, value: number, file: string): string =>
  [`sudo sysctl -w ${key}=${value}`, `echo '${key}=${value}' | sudo tee /etc/sysctl.d/${file}   # keeps it after a reboot`].join('\n');

/**
 * Profiles for the two programs through which nook creates user namespaces:
 * its executor (containers) and util-linux unshare (the image store unpacks
 * layers with it). The second opens user namespaces to anyone who runs
 * unshare, which is what the restriction was meant to prevent: say so.
 */
export function apparmorProfile(executor: string, unshare: string | null): string {
  const profile = (name: string, path: string) => [`profile ${name} ${path} flags=(unconfined) {`, '  userns,', '', `  include if exists <local/${name}>`, '}'];
  return [
    `sudo tee /etc/apparmor.d/nook <<'EOF'`,
    'abi <abi/4.0>,',
    'include <tunables/global>',
    '',
    ...profile('nook-exec', executor),
    ...(unshare ? ['', '# nook unpacks image layers with unshare; this lets any user of unshare create user namespaces', ...profile('nook-unshare', unshare)] : []),
    'EOF',
    'sudo apparmor_parser -r /etc/apparmor.d/nook',
  ].join('\n');
}

/** Our own profile is installed when /etc/apparmor.d/nook names the executor (and unshare) and allows userns. */
async function apparmorProfileInstalled(facts: HostFacts, unshare: string | null): Promise<boolean> {
  const text = await facts.view.readFile('/etc/apparmor.d/nook');
  if (text === null || !/^\s*userns\s*,/m.test(text)) return false;
  return text.includes(facts.options.executorPath) && (unshare === null || text.includes(` ${unshare} `));
}

export const checkUserNamespaces: Check = async (facts) => {
  const id = 'user-namespaces';
  const title = 'user namespaces';
  const [userns, unshare] = await Promise.all([facts.userNamespaces(), facts.unshareTool()]);
  const breaks = 'every container: nook creates a user namespace for each one';
  if (userns.maxUserNamespaces === 0) {
    return problem('fail', id, title, 'user.max_user_namespaces is 0: user namespaces are disabled', breaks, sysctlFix('user.max_user_namespaces', 15000, '90-nook-userns.conf'));
  }
  if (userns.unprivilegedUsernsClone === 0) {
    return problem('fail', id, title, 'kernel.unprivileged_userns_clone is 0: only root may create user namespaces', breaks, sysctlFix('kernel.unprivileged_userns_clone', 1, '90-nook-userns.conf'));
  }
  if (userns.apparmorRestrict === 1 && userns.apparmorEnabled) {
    if (await apparmorProfileInstalled(facts, unshare.path)) {
      return ok(id, title, `kernel.apparmor_restrict_unprivileged_userns is 1; /etc/apparmor.d/nook allows ${facts.options.executorPath}`);
    }
    return problem(
      'fail',
      id,
      title,
      'kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 23.10+): user namespaces of unconfined programs get no capabilities',
      breaks,
      `allow nook's executor to create user namespaces with an AppArmor profile:\n${apparmorProfile(facts.options.executorPath, unshare.path)}\n(or, for the whole machine: ${sysctlFix('kernel.apparmor_restrict_unprivileged_userns', 0, '90-nook-userns.conf').split('\n')[0]})`,
    );
  }
  if (userns.probe && !userns.probe.ok) {
    return problem(
      'fail',
      id,
      title,
      `unshare --user fails: ${userns.probe.message}`,
      breaks,
      'if nook runs inside a container, start that container with a seccomp and AppArmor profile that allow unshare(CLONE_NEWUSER), e.g. podman/docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined; otherwise check the kernel log (dmesg) for a security module denial',
    );
  }
  const limit = userns.maxUserNamespaces === null ? '' : `user.max_user_namespaces=${userns.maxUserNamespaces}; `;
  return ok(id, title, `${limit}${userns.probe ? 'unshare --user works' : 'not tried (util-linux unshare is not installed)'}`);
};

/**
 * The image store unpacks layers as root of a user namespace made by util-linux
 * unshare, mapping the subordinate ids with --map-users, which came in 2.38.
 */
export const checkUnshare: Check = async (facts) => {
  const id = 'unshare';
  const title = 'util-linux unshare';
  const [tool, subids] = await Promise.all([facts.unshareTool(), facts.subids()]);
  const breaks = 'pulling and loading images: layers are unpacked in a user namespace made by unshare';
  if (!tool.path) return problem('fail', id, title, 'util-linux unshare is not installed', breaks, installCommand(await facts.distribution(), 'unshare'));
  const mapsSubids = subids.uids.ranges.length > 0 && subids.gids.ranges.length > 0;
  const [major, minor] = tool.version ?? [0, 0];
  if (tool.version && mapsSubids && (major < 2 || (major === 2 && minor < 38))) {
    return problem(
      'fail',
      id,
      title,
      `${tool.path} is util-linux ${tool.versionText}, which lacks --map-users (2.38+)`,
      `${breaks} with your subordinate ids`,
      'upgrade util-linux to 2.38 or later (Debian 12 and Ubuntu 24.04 have it; Ubuntu 22.04 ships 2.37)',
    );
  }
  return ok(id, title, `${tool.path} (util-linux ${tool.versionText ?? 'version unknown'})`);
};

function describe(ranges: SubidRange[]): string {
  return ranges.map((r) => `${r.start}-${r.start + r.count - 1}`).join(', ');
}

/** The first range of `size` ids from 100000 up that no entry of the database uses. */
export function suggestFreeRange(entries: SubidEntry[], size = fullRangeSize): SubidRange {
  let start = 100000;
  for (;;) {
    const clash = entries.find((e) => e.start < start + size && start < e.start + e.count);
    if (!clash) return { start, count: size };
    start = clash.start + clash.count;
  }
}

function addCommand(kind: SubidKind, range: SubidRange, user: string): string {
  const span = `${range.start}-${range.start + range.count - 1}`;
  return `sudo usermod --add-sub${kind}s ${span} ${user}`;
}

function checkSubids(kind: SubidKind): Check {
  const id = `sub${kind}`;
  const title = `subordinate ${kind}s`;
  return async (facts) => {
    // real root writes any id map itself: ranges are an unprivileged user's affair
    if (facts.view.uid === 0) return ok(id, title, 'not needed: root maps any ids directly');
    const subids = await facts.subids();
    const found: SubidLookup = kind === 'uid' ? subids.uids : subids.gids;
    const user = facts.user;
    // one free range for both files, since the fix adds uids and gids from the same numbers
    const free = suggestFreeRange([...(subids.uids.allEntries ?? []), ...(subids.gids.allEntries ?? [])]);
    const fixFor = (range: SubidRange): string =>
      found.source === 'nss'
        ? `ask your identity administrator for a range of ${fullRangeSize} subordinate ${kind}s for ${user} (FreeIPA: ipa subid-generate --owner ${user}); ${found.origin} must list it`
        : // both ids at once: containers need uids and gids alike, from the same numbers for clarity
          `sudo usermod --add-subuids ${range.start}-${range.start + range.count - 1} --add-subgids ${range.start}-${range.start + range.count - 1} ${user}`;

    if (found.error) {
      const fix =
        found.source === 'files'
          ? `sudo chmod 644 ${found.origin}`
          : found.error.includes('not installed')
            ? installCommand(await facts.distribution(), 'getsubids')
            : `check that the identity service answers: ${found.origin}`;
      // the runtime refuses to guess past a file it cannot read (src/idmap), so that stops every container
      return found.source === 'files'
        ? problem('fail', id, title, found.error, `every container: nook cannot read ${found.origin} to compute the id mapping`, fix)
        : problem('warn', id, title, found.error, 'multi-id mappings: containers run with a single mapping (only root inside)', fix);
    }
    if (found.ranges.length === 0) {
      return problem(
        'warn',
        id,
        title,
        `no subordinate ${kind}s for ${user} in ${found.origin}`,
        `containers run with a single mapping: only root exists inside, so images with files owned by other ${kind}s cannot be unpacked and --user other than root fails`,
        fixFor(free),
      );
    }
    const total = totalCount(found.ranges);
    if (total < fullRangeSize) {
      const replace = found.source === 'files' ? `${found.ranges.map((r) => `sudo usermod --del-sub${kind}s ${r.start}-${r.start + r.count - 1} ${user}`).join('\n')}\n${addCommand(kind, free, user)}` : fixFor(free);
      return problem(
        'warn',
        id,
        title,
        `${user} has only ${total} subordinate ${kind}s (${describe(found.ranges)} in ${found.origin}); images use ${kind}s up to 65535`,
        `images with files owned by ${kind}s ${total} and above (${kind === 'uid' ? 'e.g. nobody=65534' : 'e.g. nogroup=65534'}) cannot be unpacked`,
        replace,
      );
    }
    const overlaps = subids.overlaps.filter((o) => o.kind === kind);
    if (overlaps.length > 0) {
      const first = overlaps[0]!;
      const others = [...new Set(overlaps.map((o) => o.other.owner))].join(', ');
      return problem(
        'warn',
        id,
        title,
        `${describe([first.mine])} overlaps ${first.other.owner}'s ${describe([first.other])} in ${found.origin}`,
        `isolation between users: containers of ${user} and ${others} share host ${kind}s and can read and change each other's files`,
        `${found.ranges.map((r) => `sudo usermod --del-sub${kind}s ${r.start}-${r.start + r.count - 1} ${user}`).join('\n')}\n${addCommand(kind, free, user)}`,
      );
    }
    return ok(id, title, `${user}: ${describe(found.ranges)} (${total} ids) from ${found.origin}`);
  };
}

export const checkSubuids = checkSubids('uid');
export const checkSubgids = checkSubids('gid');

function checkHelper(name: 'newuidmap' | 'newgidmap'): Check {
  const kind = name === 'newuidmap' ? 'uid' : 'gid';
  const capability = name === 'newuidmap' ? 'cap_setuid' : 'cap_setgid';
  return async (facts): Promise<CheckResult> => {
    const [helper, subids, distribution] = await Promise.all([facts.idMapHelper(name), facts.subids(), facts.distribution()]);
    const hasRange = (kind === 'uid' ? subids.uids : subids.gids).ranges.length > 0;
    const breaks = `the subordinate ${kind} range: containers run with a single mapping (only root inside)`;
    // Without a range there is nothing for the helper to map: a missing helper loses nothing more.
    const status = hasRange ? 'warn' : 'ok';
    if (!helper.path) {
      const detail = `${name} is not installed`;
      return status === 'ok' ? ok(name, name, `${detail} (not needed without subordinate ${kind}s)`) : problem('warn', name, name, detail, breaks, installCommand(distribution, name));
    }
    if (!helper.executable) {
      return problem('warn', name, name, `${helper.path} is not executable by ${facts.user}`, breaks, `sudo chmod 4755 ${helper.path}`);
    }
    if (helper.setuidRoot) return ok(name, name, `${helper.path} is setuid root`);
    if (helperHasCapability(helper)) return ok(name, name, `${helper.path} has file capabilities ${helper.fileCapabilities}`);
    const detail = helper.capabilitiesKnown
      ? `${helper.path} is neither setuid root nor has ${capability}${helper.fileCapabilities ? ` (it has ${helper.fileCapabilities})` : ''}`
      : `${helper.path} is not setuid root, and its file capabilities cannot be read (getcap is not installed)`;
    const fix = helper.capabilitiesKnown
      ? `sudo chmod u+s ${helper.path}\n(or, with file capabilities instead: sudo chmod u-s ${helper.path} && sudo setcap ${capability}+ep ${helper.path})`
      : `${installCommand(distribution, 'getcap')} && getcap ${helper.path}   # must show ${capability}=ep; else: sudo chmod u+s ${helper.path}`;
    if (status === 'ok') return ok(name, name, `${detail} (not needed without subordinate ${kind}s)`);
    return problem('warn', name, name, detail, breaks, fix);
  };
}

export const checkNewuidmap = checkHelper('newuidmap');
export const checkNewgidmap = checkHelper('newgidmap');
