/**
 * Platforms ("linux/arm64/v8") in the vocabulary of image indexes (Go's
 * GOOS/GOARCH), the host's own, and the choice of a manifest from a list.
 */
import { NookError } from '../../lib/errors.js';
import { RegistryError } from './errors.js';
import { formatPlatform, type ManifestListEntry, type Platform } from './manifest.js';

const NODE_TO_GO_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le', // Node on Linux/ppc64 is little-endian
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};

/** Architectures' usual spellings, as `--platform` may be typed. */
const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  i686: '386',
};

export function hostPlatform(): Platform {
  const architecture = NODE_TO_GO_ARCH[process.arch] ?? process.arch;
  let variant: string | undefined;
  if (architecture === 'arm') {
    const armVersion = (process.config.variables as { arm_version?: string }).arm_version;
    variant = armVersion ? `v${armVersion}` : 'v7';
  }
  return { os: 'linux', architecture, variant };
}

/** Parses --platform "os/arch[/variant]" (also "arch" alone, meaning linux/arch). */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.some((p) => p === '') || parts.length > 3) throw new NookError(`invalid platform "${text}": expected os/arch[/variant], like linux/arm64`);
  const [os, arch, variant] = parts.length === 1 ? ['linux', parts[0]!, undefined] : [parts[0]!, parts[1]!, parts[2]];
  const architecture = ARCH_ALIASES[arch] ?? arch;
  return { os, architecture, variant: normalizeVariant(architecture, variant) };
}

function normalizeVariant(architecture: string, variant: string | undefined): string | undefined {
  if (!variant) return undefined;
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8')) return 'v8';
  if (/^\d+$/.test(variant)) return `v${variant}`;
  return variant;
}

/**
 * The variants a platform can run, most preferred first: an arm/v7 machine
 * runs v7, then v6 and v5 images; arm64 without a variant means v8.
 */
function acceptableVariants(wanted: Platform): (string | undefined)[] {
  const v = normalizeVariant(wanted.architecture, wanted.variant);
  if (wanted.architecture === 'arm') {
    const level = Number((v ?? 'v7').slice(1));
    const out: (string | undefined)[] = [];
    for (let n = level; n >= 5; n--) out.push(`v${n}`);
    if (level >= 7) out.push(undefined); // images that do not say which arm
    return out;
  }
  if (wanted.architecture === 'arm64') return v === undefined || v === 'v8' ? ['v8', undefined] : [v];
  if (wanted.architecture === 'amd64') return v === undefined || v === 'v1' ? [undefined, 'v1'] : [v];
  return v === undefined ? [undefined] : [v];
}

/** The best entry of a manifest list for `wanted`, or an error listing what there is. */
export function chooseManifest(entries: ManifestListEntry[], wanted: Platform, what: string): ManifestListEntry {
  const variants = acceptableVariants(wanted);
  let best: ManifestListEntry | undefined;
  let bestRank = Infinity;
  for (const entry of entries) {
    const p = entry.platform;
    if (!p || p.os !== wanted.os || (ARCH_ALIASES[p.architecture] ?? p.architecture) !== wanted.architecture) continue;
    const rank = variants.indexOf(normalizeVariant(wanted.architecture, p.variant));
    if (rank >= 0 && rank < bestRank) {
      best = entry;
      bestRank = rank;
    }
  }
  if (best) return best;
  const available = [...new Set(entries.filter((e) => e.platform && e.platform.os !== 'unknown').map((e) => formatPlatform(e.platform!)))];
  throw new RegistryError(
    'platform',
    `no image for ${formatPlatform(wanted)} in ${what}; it has ${available.length ? available.join(', ') : 'no platform-specific images'} (choose one with --platform)`,
  );
}
