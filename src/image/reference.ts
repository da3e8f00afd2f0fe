/**
 * Image references as people type them: `busybox`, `busybox:1.36`,
 * `localhost/busybox:tag`, `host:5000/a/b:tag`, `name@sha256:...`.
 *
 * The grammar is Docker's (distribution/reference): the first path component
 * is a registry host when it contains "." or ":" or is "localhost"; names are
 * lowercase; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
 *
 * Three different questions, three functions:
 *  - parseReference(): a fully qualified reference with Docker's defaults
 *    (docker.io, library/ for one-component names). Used for names written
 *    by Docker tools (docker-archive's RepoTags) and anywhere a short name
 *    means Docker Hub.
 *  - pullCandidates(): what to try, in order, when pulling a short name: one
 *    candidate per unqualified-search registry (podman's registries.conf).
 *  - localReference(): the name a locally made image gets (tag, import):
 *    short names go under `localhost/`, as podman does.
 */
import { NookError } from '../lib/errors.js';
import { parseDigest, type Digest } from './digest.js';

export const dockerHubDomain = 'docker.io';
export const localDomain = 'localhost';
export const defaultTag = 'latest';

export interface ImageReference {
  /** registry host[:port]: "docker.io", "localhost", "quay.io", "127.0.0.1:5000" */
  domain: string;
  /** repository path in that registry: "library/busybox", "a/b" */
  path: string;
  tag: string | undefined;
  digest: Digest | undefined;
}

/** A reference as written, before any default is applied. */
export interface ReferenceParts {
  /** undefined when the input named no registry (a short name) */
  domain: string | undefined;
  path: string;
  tag: string | undefined;
  digest: Digest | undefined;
}

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainPattern = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const pathComponentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const maxNameLength = 255;

function invalid(input: string, reason: string): NookError {
  const shown = input.length > 100 ? `${input.slice(0, 100)}...` : input;
  return new NookError(`invalid image reference ${JSON.stringify(shown)}: ${reason}`);
}

/** Splits a reference into its parts without applying defaults; throws on bad syntax. */
export function splitReference(input: string): ReferenceParts {
  if (input.length === 0) throw invalid(input, 'empty');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseDigest(rest.slice(at + 1), `digest in ${JSON.stringify(input)}:`);
    rest = rest.slice(0, at);
  }
  // A tag is after the last ':' that follows the last '/', so "host:5000/a" has none.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw invalid(input, `bad tag ${JSON.stringify(tag)}`);
  }
  if (rest.length === 0) throw invalid(input, 'no repository name');
  if (rest.length > maxNameLength) throw invalid(input, `repository name longer than ${maxNameLength} characters`);

  let domain: string | undefined;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === localDomain) {
      domain = first;
      path = rest.slice(slash + 1);
      if (!domainPattern.test(domain)) throw invalid(input, `bad registry host ${JSON.stringify(domain)}`);
    }
  }
  for (const component of path.split('/')) {
    if (!pathComponentPattern.test(component)) {
      if (component.toLowerCase() !== component) throw invalid(input, 'repository name must be lowercase');
      throw invalid(input, `bad name component ${JSON.stringify(component)}`);
    }
  }
  return { domain, path, tag, digest };
}

function qualifyForDomain(domain: string, path: string): { domain: string; path: string } {
  if (domain === 'index.docker.io' || domain === 'registry-1.docker.io') domain = dockerHubDomain;
  if (domain === dockerHubDomain && !path.includes('/')) path = `library/${path}`;
  return { domain, path };
}

/** A fully qualified reference; short names mean `defaultDomain` (Docker Hub unless said otherwise). */
export function parseReference(input: string, options: { defaultDomain?: string } = {}): ImageReference {
  const parts = splitReference(input);
  const { domain, path } = qualifyForDomain(parts.domain ?? options.defaultDomain ?? dockerHubDomain, parts.path);
  return { domain, path, tag: parts.tag, digest: parts.digest };
}

/** The name a locally created image gets: short names go under localhost/. */
export function localReference(input: string): ImageReference {
  return withDefaultTag(parseReference(input, { defaultDomain: localDomain }));
}

/** True when the input names no registry: then pulling it consults the search list. */
export function isShortName(input: string): boolean {
  return splitReference(input).domain === undefined;
}

/**
 * The references to try, in order, when pulling `input`. A qualified name is
 * itself; a short name yields one candidate per unqualified-search registry.
 * An empty search list makes short names an error, as in podman.
 */
export function pullCandidates(input: string, searchRegistries: readonly string[]): ImageReference[] {
  const parts = splitReference(input);
  const make = (domain: string): ImageReference => withDefaultTag({ ...qualifyForDomain(domain, parts.path), tag: parts.tag, digest: parts.digest });
  if (parts.domain !== undefined) return [make(parts.domain)];
  if (searchRegistries.length === 0) {
    throw new NookError(`short name ${JSON.stringify(input)} cannot be resolved: no unqualified-search registries are configured; use a full name such as docker.io/library/${parts.path}`);
  }
  return searchRegistries.map(make);
}

/** Adds the `latest` tag when the reference has neither tag nor digest. */
export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: defaultTag } : ref;
}

/** "docker.io/library/busybox" */
export function repositoryName(ref: Pick<ImageReference, 'domain' | 'path'>): string {
  return `${ref.domain}/${ref.path}`;
}

/** "docker.io/library/busybox:latest", "...@sha256:...", or both. */
export function formatReference(ref: ImageReference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** "docker.io/library/busybox:1.36" for a tagged name; throws when it has no tag (a digest only). */
export function taggedName(ref: ImageReference): string {
  if (ref.tag === undefined) throw new NookError(`${formatReference(ref)} has no tag`);
  return `${repositoryName(ref)}:${ref.tag}`;
}
