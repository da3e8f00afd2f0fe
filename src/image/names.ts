/**
 * Finding a local image from what a user typed: a full name, a short name
 * (`busybox` finds localhost/busybox, then docker.io/library/busybox per the
 * search list, then any registry's busybox if only one has it), an id, an id
 * prefix of at least 3 hex digits, or name@sha256:digest.
 */
import { NookError } from '../lib/errors.js';
import { defaultTag, dockerHubDomain, localDomain, splitReference, type ReferenceParts } from './reference.js';
import type { ImageView } from './records.js';

export interface NameLookup {
  images: ImageView[];
  /** registries a short name may mean, in order (default: docker.io) */
  searchRegistries?: readonly string[];
}

export type FoundImage = ImageView & { matchedName: string | undefined };

function qualify(domain: string, path: string): string {
  if (domain === dockerHubDomain && !path.includes('/')) return `${domain}/library/${path}`;
  return `${domain}/${path}`;
}

function repositoryOf(name: string): string {
  const at = name.indexOf('@');
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(':');
  return colon > base.lastIndexOf('/') ? base.slice(0, colon) : base;
}

/** The repositories (without tag) a reference may mean, most likely first; for short names the last entry is a wildcard "*\/path". */
function candidateRepositories(parts: ReferenceParts, searchRegistries: readonly string[]): string[] {
  if (parts.domain !== undefined) return [qualify(parts.domain === 'index.docker.io' ? dockerHubDomain : parts.domain, parts.path)];
  return [...new Set([qualify(localDomain, parts.path), ...searchRegistries.map((r) => qualify(r, parts.path)), `*/${parts.path}`])];
}

function matchesRepository(candidate: string, repository: string): boolean {
  if (!candidate.startsWith('*/')) return candidate === repository;
  // any registry: "<domain>/<path>" where <domain> has no slash (docker.io/library/x counts for x)
  const path = candidate.slice(2);
  const rest = repository.slice(repository.indexOf('/') + 1);
  return rest === path || (repository.startsWith(`${dockerHubDomain}/`) && rest === `library/${path}`);
}

export function resolveName(lookup: NameLookup, input: string): FoundImage | null {
  const { images } = lookup;
  const bare = input.startsWith('sha256:') ? input.slice(7) : input;
  if (/^[a-f0-9]{64}$/.test(bare)) {
    const view = images.find((v) => v.record.id === bare);
    return view ? { ...view, matchedName: undefined } : null;
  }

  let parts: ReferenceParts | undefined;
  try {
    parts = splitReference(input);
  } catch (error) {
    if (!/^[a-f0-9]{3,63}$/.test(input)) throw error;
  }

  if (parts) {
    const repositories = candidateRepositories(parts, lookup.searchRegistries ?? [dockerHubDomain]);
    if (parts.digest) {
      const digest = parts.digest;
      for (const repository of repositories) {
        const found = images.filter(
          (v) =>
            v.record.repoDigests.some((rd) => rd.endsWith(`@${digest}`) && matchesRepository(repository, repositoryOf(rd))) ||
            (v.record.manifestDigest === digest && v.names.some((n) => matchesRepository(repository, repositoryOf(n)))),
        );
        if (found.length > 0) return { ...found[0]!, matchedName: undefined };
      }
    } else {
      const tag = parts.tag ?? defaultTag;
      for (const repository of repositories) {
        const hits: { view: ImageView; name: string }[] = [];
        for (const view of images) {
          for (const name of view.names) {
            if (name.endsWith(`:${tag}`) && matchesRepository(repository, repositoryOf(name))) hits.push({ view, name });
          }
        }
        const ids = new Set(hits.map((h) => h.view.record.id));
        if (ids.size > 1) {
          throw new NookError(`${input} is ambiguous: it could be ${hits.map((h) => h.name).sort().join(' or ')}; use the full name`);
        }
        if (hits.length > 0) return { ...hits[0]!.view, matchedName: hits[0]!.name };
      }
    }
  }

  if (/^[a-f0-9]{3,63}$/.test(bare)) {
    const found = images.filter((v) => v.record.id.startsWith(bare));
    if (found.length > 1) throw new NookError(`${input} is ambiguous: it is the beginning of ${found.length} image ids`);
    if (found.length === 1) return { ...found[0]!, matchedName: undefined };
  }
  return null;
}
