/**
 * Which distribution this is, only to print the right install command in a
 * fix ("sudo apt-get install uidmap" is "sudo dnf install shadow-utils" on
 * Fedora).
 */
import type { HostView } from './view.js';

export interface Distribution {
  /** os-release ID, e.g. "debian", "ubuntu", "fedora" */
  id: string;
  /** os-release ID_LIKE words, e.g. ["debian"] for Ubuntu */
  like: string[];
  /** os-release VERSION_ID, e.g. "24.04" */
  versionId: string;
  /** os-release PRETTY_NAME */
  prettyName: string;
}

export function parseOsRelease(text: string | null): Distribution {
  const fields = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) fields.set(match[1]!, match[2]!.replace(/^(["'])(.*)\1$/, '$2'));
  }
  const id = fields.get('ID') ?? 'linux';
  return {
    id,
    like: (fields.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    versionId: fields.get('VERSION_ID') ?? '',
    prettyName: fields.get('PRETTY_NAME') ?? fields.get('NAME') ?? id,
  };
}

export async function readDistribution(view: HostView): Promise<Distribution> {
  return parseOsRelease((await view.readFile('/etc/os-release')) ?? (await view.readFile('/usr/lib/os-release')));
}

type Family = 'debian' | 'fedora' | 'suse' | 'arch' | 'alpine' | 'other';

function family(distribution: Distribution): Family {
  for (const name of [distribution.id, ...distribution.like]) {
    if (name === 'debian' || name === 'ubuntu') return 'debian';
    if (name === 'fedora' || name === 'rhel' || name === 'centos') return 'fedora';
    if (name === 'suse' || name.startsWith('opensuse') || name === 'sles') return 'suse';
    if (name === 'arch') return 'arch';
    if (name === 'alpine') return 'alpine';
  }
  return 'other';
}

/** The package that ships a tool, per family; absent: the tool's own name. */
const packages: Record<string, Partial<Record<Family, string>>> = {
  newuidmap: { debian: 'uidmap', fedora: 'shadow-utils', suse: 'shadow', arch: 'shadow', alpine: 'shadow-uidmap' },
  getsubids: { debian: 'uidmap', fedora: 'shadow-utils-subid', suse: 'shadow', arch: 'shadow', alpine: 'shadow-uidmap' },
  getcap: { debian: 'libcap2-bin', fedora: 'libcap', suse: 'libcap-progs', arch: 'libcap', alpine: 'libcap-utils' },
  unshare: { debian: 'util-linux', fedora: 'util-linux', suse: 'util-linux', arch: 'util-linux', alpine: 'util-linux-misc' },
  systemctl: { debian: 'systemd', fedora: 'systemd', suse: 'systemd', arch: 'systemd' },
};

const installers: Record<Family, string> = {
  debian: 'sudo apt-get install',
  fedora: 'sudo dnf install',
  suse: 'sudo zypper install',
  arch: 'sudo pacman -S',
  alpine: 'sudo apk add',
  other: 'install the package that provides',
};

/** "sudo apt-get install uidmap" for tool "newuidmap" on Debian. */
export function installCommand(distribution: Distribution, tool: string): string {
  const fam = family(distribution);
  const name = packages[tool]?.[fam] ?? (tool === 'newgidmap' ? (packages.newuidmap?.[fam] ?? tool) : tool);
  return `${installers[fam]} ${name}`;
}
