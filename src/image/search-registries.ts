/**
 * The unqualified-search registries: where a short name such as `busybox` is
 * looked for when pulled. Read from the same registries.conf podman reads
 * ($XDG_CONFIG_HOME/containers/registries.conf, then
 * /etc/containers/registries.conf), so a machine configured for podman needs
 * nothing more; NOOK_UNQUALIFIED_SEARCH_REGISTRIES (comma-separated, may be
 * empty) overrides both. Default: docker.io.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { dockerHubDomain } from './reference.js';

export function registriesConfPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const configHome = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
  return [join(configHome, 'containers', 'registries.conf'), '/etc/containers/registries.conf'];
}

/**
 * Only the `unqualified-search-registries = [...]` key of the TOML file is
 * read: a full TOML parser is not worth a dependency for one array.
 */
export function parseUnqualifiedSearch(text: string): string[] | undefined {
  const match = /^\s*unqualified-search-registries\s*=\s*\[([^\]]*)\]/m.exec(text);
  if (!match) return undefined;
  return [...match[1]!.matchAll(/["']([^"']+)["']/g)].map((m) => m[1]!.trim()).filter((s) => s.length > 0);
}

export function unqualifiedSearchRegistries(env: NodeJS.ProcessEnv = process.env, paths = registriesConfPaths(env)): string[] {
  const override = env.NOOK_UNQUALIFIED_SEARCH_REGISTRIES;
  if (override !== undefined) return override.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const found = parseUnqualifiedSearch(text);
    if (found) return found;
  }
  return [dockerHubDomain];
}
