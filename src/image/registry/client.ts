/**
 * The read side of the OCI distribution API for one repository:
 *   GET /v2/NAME/manifests/REFERENCE   (a tag or a digest)
 *   GET /v2/NAME/blobs/DIGEST          (with Range to resume)
 * Manifests are small and verified here; blobs are streamed to the caller.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { RegistryError, parseErrorBody, summarizeErrorBody } from './errors.js';
import { MANIFEST_ACCEPT, parseManifest, type Manifest } from './manifest.js';
import type { RegistrySession } from './session.js';
import { readBody } from './transport.js';

export interface FetchedManifest {
  manifest: Manifest;
  /** the exact bytes: their sha256 is the manifest's digest */
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

/** Manifests larger than this are refused (the distribution spec suggests 4 MiB). */
const MANIFEST_LIMIT = 4 * 1024 * 1024;

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** "host/repo:tag" or "host/repo@digest" for messages. */
function displayName(session: RegistrySession, reference: string): string {
  return `${session.host}/${session.repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
}

/**
 * Fetches and verifies a manifest. `reference` is a tag or a digest; when it
 * is a digest, the bytes must hash to it, otherwise the registry's
 * Docker-Content-Digest (when sent) must agree with them.
 */
export async function fetchManifest(session: RegistrySession, reference: string): Promise<FetchedManifest> {
  const what = displayName(session, reference);
  const response = await session.request({ method: 'GET', url: `/v2/${session.repository}/manifests/${reference}`, headers: { accept: MANIFEST_ACCEPT } });
  const status = response.statusCode ?? 0;
  if (status !== 200) {
    const body = (await readBody(response).catch(() => Buffer.alloc(0))).toString('utf8');
    throw errorForStatus(status, body, what, reference.startsWith('sha256:') ? 'manifest' : 'tag');
  }
  const bytes = await readBody(response, MANIFEST_LIMIT);
  const digest = `sha256:${sha256Hex(bytes)}`;
  if (reference.startsWith('sha256:')) {
    if (digest !== reference) throw new RegistryError('digest', `the manifest of ${what} does not match its digest (the registry sent content with digest ${digest})`);
  } else {
    const claimed = response.headers['docker-content-digest'];
    if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new RegistryError('digest', `the manifest of ${what} does not match the digest the registry announced (${claimed}; content is ${digest})`);
    }
  }
  const contentType = response.headers['content-type'];
  const manifest = parseManifest(bytes, contentType, what);
  return { manifest, bytes, digest, mediaType: manifest.mediaType };
}

/**
 * Opens a blob for reading from byte `offset`. Resolves with the response
 * and the offset the body really starts at (0 when the registry ignored the
 * Range request and sends everything).
 */
export async function openBlob(session: RegistrySession, digest: string, offset = 0): Promise<{ body: IncomingMessage; start: number; length: number | undefined }> {
  const headers: Record<string, string> = {};
  if (offset > 0) headers.range = `bytes=${offset}-`;
  const response = await session.request({ method: 'GET', url: `/v2/${session.repository}/blobs/${digest}`, headers });
  const status = response.statusCode ?? 0;
  const contentLength = response.headers['content-length'] === undefined ? undefined : Number(response.headers['content-length']);
  if (status === 200) return { body: response, start: 0, length: contentLength };
  if (status === 206) {
    const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(response.headers['content-range'] ?? '');
    if (!match || Number(match[1]) !== offset) {
      response.resume();
      throw new RegistryError('server', `${session.host} answered a range request for ${digest} with the wrong range (${response.headers['content-range'] ?? 'none'})`);
    }
    return { body: response, start: offset, length: contentLength };
  }
  if (status === 416 && offset > 0) {
    // Our partial file is already as long as the blob (or longer): start over.
    response.resume();
    return openBlob(session, digest, 0);
  }
  const body = (await readBody(response).catch(() => Buffer.alloc(0))).toString('utf8');
  throw errorForStatus(status, body, `blob ${digest} of ${session.host}/${session.repository}`, 'blob');
}

function errorForStatus(status: number, body: string, what: string, kind: 'tag' | 'manifest' | 'blob'): RegistryError {
  const codes = parseErrorBody(body).map((e) => e.code);
  if (status === 404 || codes.includes('MANIFEST_UNKNOWN') || codes.includes('NAME_UNKNOWN') || codes.includes('BLOB_UNKNOWN')) {
    if (codes.includes('NAME_UNKNOWN')) return new RegistryError('not-found', `unknown image ${what.replace(/[:@][^/]*$/, '')}: the repository does not exist`);
    if (kind === 'tag') return new RegistryError('not-found', `unknown image or tag ${what}`);
    if (kind === 'manifest') return new RegistryError('not-found', `unknown manifest ${what}`);
    return new RegistryError('not-found', `${what} is missing from the registry`);
  }
  if (status === 403 || codes.includes('DENIED')) return new RegistryError('denied', `access to ${what} denied: ${summarizeErrorBody(status, body)}`);
  if (status === 429 || codes.includes('TOOMANYREQUESTS')) return new RegistryError('server', `${what}: the registry limits requests (too many requests); try again later`);
  return new RegistryError('server', `fetching ${what} failed: ${summarizeErrorBody(status, body)}`);
}
