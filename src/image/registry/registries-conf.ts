/**
 * registries.conf (version 2), as podman reads it: where short names are
 * looked up, which registries are insecure or blocked, where their content
 * really lives (location) and which mirrors to try first.
 *
 * Files, as containers/image finds them: $CONTAINERS_REGISTRIES_CONF alone if
 * set; otherwise ~/.config/containers/registries.conf if it exists, else
 * /etc/containers/registries.conf; then the drop-ins of
 * /etc/containers/registries.conf.d/ and ~/.config/containers/registries.conf.d/
 * (*.conf, by name), each overriding what it sets.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NookError, errnoCode } from '../../lib/errors.js';
import { parseToml, type TomlTable, type TomlValue } from './toml.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorConfig {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryConfig {
  /** What references this entry applies to: "host[:port][/path]" or "*.domain". */
  prefix: string;
  /** Where content is fetched from instead of `prefix` (empty: same as the prefix). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: MirrorConfig[];
}

export interface RegistriesConfig {
  /** undefined when no file sets it (then docker.io, see searchRegistries) */
  unqualifiedSearchRegistries: string[] | undefined;
  registries: RegistryConfig[];
  /** short name -> fully qualified name ([aliases]) */
  aliases: Record<string, string>;
  /** the files this was read from, for error messages and `--debug` */
  sources: string[];
}

/** One place to try fetching an image from, in the order to try them. */
export interface PullSource {
  /** "host[:port]/path" with the location rewriting applied */
  name: string;
  /** host[:port] of `name` */
  host: string;
  /** repository path inside that registry */
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

export function emptyRegistriesConfig(): RegistriesConfig {
  return { unqualifiedSearchRegistries: undefined, registries: [], aliases: {}, sources: [] };
}

export function registriesConfFiles(env: NodeJS.ProcessEnv = process.env): { main: string[]; dropInDirs: string[] } {
  if (env.CONTAINERS_REGISTRIES_CONF) return { main: [env.CONTAINERS_REGISTRIES_CONF], dropInDirs: [] };
  const home = env.HOME ?? homedir();
  const configHome = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return {
    main: [join(configHome, 'containers', 'registries.conf'), '/etc/containers/registries.conf'],
    dropInDirs: ['/etc/containers/registries.conf.d', join(configHome, 'containers', 'registries.conf.d')],
  };
}

/** Reads the files podman would; a missing file is fine, a malformed one is an error naming it. */
export function loadRegistriesConfig(env: NodeJS.ProcessEnv = process.env): RegistriesConfig {
  const { main, dropInDirs } = registriesConfFiles(env);
  let config = emptyRegistriesConfig();
  for (const path of main) {
    const text = readOptional(path);
    if (text === undefined) continue;
    config = mergeRegistriesConfig(config, parseRegistriesConf(text, path));
    break; // the first main file that exists is the only one read
  }
  for (const dir of dropInDirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.conf')).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(dir, name);
      const text = readOptional(path);
      if (text !== undefined) config = mergeRegistriesConfig(config, parseRegistriesConf(text, path));
    }
  }
  return config;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new NookError(`cannot read ${path}: ${code ?? String(error)}`, { cause: error });
  }
}

/**
 * A drop-in replaces the search list when it sets one, replaces registries
 * with the same prefix, adds the others, and adds or replaces aliases.
 */
export function mergeRegistriesConfig(base: RegistriesConfig, over: RegistriesConfig): RegistriesConfig {
  const registries = base.registries.filter((r) => !over.registries.some((o) => o.prefix === r.prefix));
  return {
    unqualifiedSearchRegistries: over.unqualifiedSearchRegistries ?? base.unqualifiedSearchRegistries,
    registries: [...registries, ...over.registries],
    aliases: { ...base.aliases, ...over.aliases },
    sources: [...base.sources, ...over.sources],
  };
}

export function parseRegistriesConf(text: string, source = 'registries.conf'): RegistriesConfig {
  let doc: TomlTable;
  try {
    doc = parseToml(text);
  } catch (error) {
    throw new NookError(`${source}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const fail = (what: string) => new NookError(`${source}: ${what}`);
  if ('registries' in doc && !('registry' in doc)) {
    throw fail('this is the version 1 format ([registries.search]); nook reads version 2 ([[registry]], unqualified-search-registries)');
  }
  const stringList = (value: TomlValue | undefined, key: string): string[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw fail(`${key} must be an array of strings`);
    return value as string[];
  };
  const str = (table: TomlTable, key: string, where: string): string => {
    const value = table[key];
    if (value === undefined) return '';
    if (typeof value !== 'string') throw fail(`${where}.${key} must be a string`);
    return value;
  };
  const bool = (table: TomlTable, key: string, where: string): boolean => {
    const value = table[key];
    if (value === undefined) return false;
    if (typeof value !== 'boolean') throw fail(`${where}.${key} must be true or false`);
    return value;
  };

  const registries: RegistryConfig[] = [];
  const entries = doc.registry ?? [];
  if (!Array.isArray(entries)) throw fail('registry must be an array of tables ([[registry]])');
  for (const entry of entries) {
    if (typeof entry !== 'object' || Array.isArray(entry)) throw fail('registry must be an array of tables ([[registry]])');
    const location = stripScheme(str(entry, 'location', 'registry'));
    const prefix = stripScheme(str(entry, 'prefix', 'registry')) || location;
    if (!prefix) throw fail('a [[registry]] needs a prefix or a location');
    if (prefix.startsWith('*.') && location) throw fail(`registry "${prefix}": a wildcard prefix cannot have a location`);
    const mirrorEntries = entry.mirror ?? [];
    if (!Array.isArray(mirrorEntries)) throw fail(`registry "${prefix}": mirror must be an array of tables ([[registry.mirror]])`);
    const digestOnly = bool(entry, 'mirror-by-digest-only', 'registry');
    const mirrors = mirrorEntries.map((m): MirrorConfig => {
      if (typeof m !== 'object' || Array.isArray(m)) throw fail(`registry "${prefix}": bad mirror`);
      const mirrorLocation = stripScheme(str(m, 'location', 'registry.mirror'));
      if (!mirrorLocation) throw fail(`registry "${prefix}": a mirror needs a location`);
      const mode = str(m, 'pull-from-mirror', 'registry.mirror') || (digestOnly ? 'digest-only' : 'all');
      if (mode !== 'all' && mode !== 'digest-only' && mode !== 'tag-only') throw fail(`registry "${prefix}": pull-from-mirror must be all, digest-only or tag-only`);
      return { location: mirrorLocation, insecure: bool(m, 'insecure', 'registry.mirror'), pullFromMirror: mode };
    });
    registries.push({ prefix, location, insecure: bool(entry, 'insecure', 'registry'), blocked: bool(entry, 'blocked', 'registry'), mirrors });
  }

  const aliases: Record<string, string> = {};
  const aliasTable = doc.aliases;
  if (aliasTable !== undefined) {
    if (typeof aliasTable !== 'object' || Array.isArray(aliasTable)) throw fail('[aliases] must be a table');
    for (const [name, value] of Object.entries(aliasTable)) {
      if (typeof value !== 'string') throw fail(`alias "${name}" must be a string`);
      aliases[name] = value;
    }
  }

  return {
    unqualifiedSearchRegistries:
      'unqualified-search-registries' in doc ? stringList(doc['unqualified-search-registries'], 'unqualified-search-registries').map(stripScheme) : undefined,
    registries,
    aliases,
    sources: [source],
  };
}

/**
 * Where short names are looked for: $NOOK_UNQUALIFIED_SEARCH_REGISTRIES
 * (comma-separated) when set, else the configuration's list, else docker.io.
 */
export function searchRegistries(config: RegistriesConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.NOOK_UNQUALIFIED_SEARCH_REGISTRIES;
  if (override !== undefined) return override.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return config.unqualifiedSearchRegistries ?? ['docker.io'];
}

/** Some files write "https://host"; podman tolerates that, so do we. */
function stripScheme(value: string): string {
  return value.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
}

/** Does `prefix` cover the reference name "host/path" (plus ":tag" or "@digest")? */
function prefixMatches(prefix: string, name: string): boolean {
  if (prefix.startsWith('*.')) {
    const host = name.split('/')[0]!;
    return host.endsWith(prefix.slice(1));
  }
  if (!name.startsWith(prefix)) return false;
  const next = name[prefix.length];
  return next === undefined || next === '/' || next === ':' || next === '@';
}

/** The [[registry]] entry for a fully qualified name: the longest matching prefix. */
export function findRegistryConfig(config: RegistriesConfig, name: string): RegistryConfig | undefined {
  let best: RegistryConfig | undefined;
  let bestLength = -1;
  for (const entry of config.registries) {
    if (!prefixMatches(entry.prefix, name)) continue;
    // a wildcard counts as shorter than any exact prefix of the same host
    const length = entry.prefix.startsWith('*.') ? entry.prefix.length - 2 : entry.prefix.length + 1;
    if (length > bestLength) {
      best = entry;
      bestLength = length;
    }
  }
  return best;
}

/**
 * The sources to try for a fully qualified name ("host/path"), mirrors first,
 * the primary location last. `byDigest`: the pull names a digest, so
 * `pull-from-mirror = "digest-only"` mirrors apply. Throws when blocked.
 */
export function pullSources(config: RegistriesConfig, name: string, byDigest: boolean): PullSource[] {
  const entry = findRegistryConfig(config, name);
  if (!entry) return [splitSource(name, false, false)];
  if (entry.blocked) throw new NookError(`registry ${entry.prefix} is blocked in ${config.sources.join(', ') || 'registries.conf'}`);
  const rest = entry.prefix.startsWith('*.') ? '' : name.slice(entry.prefix.length);
  const base = entry.prefix.startsWith('*.') ? name : `${entry.location || entry.prefix}${rest}`;
  const sources: PullSource[] = [];
  for (const mirror of entry.mirrors) {
    if (mirror.pullFromMirror === 'digest-only' && !byDigest) continue;
    if (mirror.pullFromMirror === 'tag-only' && byDigest) continue;
    const mirrored = entry.prefix.startsWith('*.') ? `${mirror.location}/${name.slice(name.indexOf('/') + 1)}` : `${mirror.location}${rest}`;
    sources.push(splitSource(mirrored, mirror.insecure, true));
  }
  sources.push(splitSource(base, entry.insecure, false));
  return sources;
}

/** Is this registry host marked insecure (http allowed, certificate not verified)? */
export function isInsecureRegistry(config: RegistriesConfig, host: string): boolean {
  const entry = findRegistryConfig(config, host);
  if (entry?.insecure) return true;
  return config.registries.some((r) => r.mirrors.some((m) => m.insecure && (m.location === host || m.location.startsWith(`${host}/`))));
}

function splitSource(name: string, insecure: boolean, mirror: boolean): PullSource {
  const slash = name.indexOf('/');
  const host = slash < 0 ? name : name.slice(0, slash);
  const repository = slash < 0 ? '' : name.slice(slash + 1);
  return { name, host, repository, insecure, mirror };
}
