/**
 * Doctor checks about resource limits and the login session: cgroup version,
 * delegated controllers, the systemd user session, lingering, and
 * XDG_RUNTIME_DIR.
 */
import { dirname } from 'node:path';
import { ok, problem, type Check } from './check.js';
import { decideCgroupManager, wantedControllers } from './cgroup-manager.js';

const limitsLost = 'resource limits: --memory, --cpus, --pids-limit and the like are not applied';

export const delegateDropIn = [
  'sudo mkdir -p /etc/systemd/system/user@.service.d',
  "printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf",
  'sudo systemctl daemon-reload   # then log out and in again',
].join('\n');

export const checkCgroupVersion: Check = async (facts) => {
  const id = 'cgroup-version';
  const title = 'cgroup version';
  const cgroups = await facts.cgroups();
  if (cgroups.version === 'v2') return ok(id, title, 'cgroup v2 (unified)');
  const detail = cgroups.version === 'none' ? 'no cgroup filesystem mounted at /sys/fs/cgroup' : decideCgroupManager(cgroups).reason;
  return problem(
    'warn',
    id,
    title,
    detail,
    limitsLost,
    'boot with cgroup v2: add systemd.unified_cgroup_hierarchy=1 to GRUB_CMDLINE_LINUX in /etc/default/grub, run sudo update-grub (Fedora: sudo grub2-mkconfig -o /boot/grub2/grub.cfg), reboot',
  );
};

export const checkCgroupControllers: Check = async (facts) => {
  const id = 'cgroup-controllers';
  const title = 'delegated cgroup controllers';
  const cgroups = await facts.cgroups();
  if (cgroups.version !== 'v2') return null;
  const choice = decideCgroupManager(cgroups);
  if (choice.manager === 'none') {
    const fix = cgroups.systemd.pid1 ? `start a systemd user session (see below) and delegate controllers:\n${delegateDropIn}` : 'run nook in a cgroup you own: e.g. a systemd service with Delegate=yes, or a container started with a private, writable cgroup namespace';
    return problem('warn', id, title, choice.reason, limitsLost, fix);
  }
  const missing = wantedControllers.filter((c) => !choice.controllers.includes(c));
  if (missing.length > 0) {
    const fix = choice.manager === 'systemd' ? delegateDropIn : `the owner of the parent cgroup must enable them: echo '${missing.map((c) => `+${c}`).join(' ')}' > ${dirname(cgroups.ownDir ?? '/sys/fs/cgroup/x')}/cgroup.subtree_control`;
    return problem('warn', id, title, `${choice.manager} manager; delegated: ${choice.controllers.join(' ') || 'none'}; missing: ${missing.join(' ')}`, `limits through ${missing.join(', ')} (${missing.map(limitFlag).join(', ')})`, fix);
  }
  return ok(id, title, `${choice.manager} manager; delegated: ${choice.controllers.join(' ')}`);
};

function limitFlag(controller: string): string {
  switch (controller) {
    case 'memory':
      return '--memory';
    case 'pids':
      return '--pids-limit';
    case 'cpu':
      return '--cpus';
    case 'cpuset':
      return '--cpuset-cpus';
    case 'io':
      return '--device-read-bps';
    default:
      return controller;
  }
}

export const checkSystemdUserSession: Check = async (facts) => {
  const id = 'systemd-user-session';
  const title = 'systemd user session';
  const cgroups = await facts.cgroups();
  if (!cgroups.systemd.pid1) return null;
  if (cgroups.systemd.userManager?.answers) return ok(id, title, `systemctl --user answers (${cgroups.systemd.busPath})`);
  const detail = cgroups.systemd.userManager ? `systemctl --user fails: ${cgroups.systemd.userManager.message}` : `no session bus socket for uid ${facts.view.uid} (${facts.view.env.DBUS_SESSION_BUS_ADDRESS ? 'DBUS_SESSION_BUS_ADDRESS does not point to one' : `/run/user/${facts.view.uid}/bus missing`})`;
  // Only a loss on cgroup v2, where systemd would hand out the delegated cgroups.
  const breaks = cgroups.version === 'v2' ? 'the systemd cgroup manager: containers get resource limits only through a writable cgroup of their own' : 'containers started with -d are not tracked by systemd';
  return problem(
    'warn',
    id,
    title,
    detail,
    breaks,
    `log in as ${facts.user} through a real session (ssh, or: sudo machinectl shell ${facts.user}@) instead of su/sudo; or start the user manager without a login: sudo loginctl enable-linger ${facts.user}`,
  );
};

export const checkLingering: Check = async (facts) => {
  const id = 'lingering';
  const title = 'lingering';
  const cgroups = await facts.cgroups();
  if (!cgroups.systemd.pid1) return null;
  if (cgroups.systemd.lingering) return ok(id, title, `enabled for ${facts.user}`);
  return problem(
    'warn',
    id,
    title,
    `not enabled for ${facts.user}`,
    'detached containers (-d): systemd stops them when your last session ends',
    `loginctl enable-linger ${facts.user}   # or, if polkit refuses: sudo loginctl enable-linger ${facts.user}`,
  );
};

export const checkRuntimeDir: Check = async (facts) => {
  const id = 'runtime-dir';
  const title = 'XDG_RUNTIME_DIR';
  const dir = facts.view.env.XDG_RUNTIME_DIR;
  const own = `/run/user/${facts.view.uid}`;
  const fallback = `nook keeps its run state in ${facts.paths.runRoot} instead`;
  const loginFix = `log in as ${facts.user} directly (ssh, or: sudo machinectl shell ${facts.user}@) rather than with su/sudo, or: export XDG_RUNTIME_DIR=${own} when it exists`;
  // Only worth mentioning where systemd could have given the user a session.
  const session = (await facts.cgroups()).systemd.pid1 ? '; the systemd user session cannot be found' : '';
  if (!dir) {
    return problem('warn', id, title, 'XDG_RUNTIME_DIR is not set', `${fallback}${session}`, loginFix);
  }
  const info = await facts.view.stat(dir);
  if (!info || info.type !== 'dir') return problem('warn', id, title, `${dir} does not exist`, fallback, loginFix);
  if (info.uid !== facts.view.uid) {
    return problem('warn', id, title, `${dir} belongs to uid ${info.uid}, not ${facts.user} (after su or sudo)`, `${fallback}${session}`, loginFix);
  }
  if ((info.mode & 0o077) !== 0) {
    return problem('warn', id, title, `${dir} is mode ${(info.mode & 0o777).toString(8)}: other users can reach it`, 'privacy of container sockets and locks', `chmod 0700 ${dir}`);
  }
  return ok(id, title, `${dir} (run root ${facts.paths.runRoot})`);
};
