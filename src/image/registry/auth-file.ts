/**
 * Registry credentials in the auth.json format that podman, skopeo, buildah
 * and docker share: {"auths": {"registry.example.com": {"auth": base64("user:pass")}}}.
 *
 * Reading, as containers/image does: $REGISTRY_AUTH_FILE (or --authfile) alone
 * when given; otherwise $XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.config/containers/auth.json, ~/.docker/config.json and ~/.dockercfg, the
 * first one that has an entry for the registry winning. Keys may also name a
 * namespace or repository ("quay.io/team"), the most specific one winning.
 * Writing (login/logout) goes to the first of those paths (or --authfile),
 * atomically, mode 0600: the file holds passwords.
 */
import { readFileSync, mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NookError, errnoCode } from '../../lib/errors.js';

export interface Credentials {
  username: string;
  password: string;
}

/** An auth entry as found, with where it came from (for messages). */
export interface FoundCredentials extends Credentials {
  file: string;
  key: string;
}

interface AuthFileContent {
  auths?: Record<string, { auth?: string; identitytoken?: string } | undefined>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [other: string]: unknown;
}

export interface AuthFileOptions {
  /** --authfile; also $REGISTRY_AUTH_FILE */
  authFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

/** The file `login` writes to and `logout` removes from. */
export function defaultAuthFile(options: AuthFileOptions = {}): string {
  const env = options.env ?? process.env;
  if (options.authFile) return options.authFile;
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  const runtimeDir = usableRuntimeDir(env, options.uid ?? process.getuid?.() ?? 0);
  if (runtimeDir) return join(runtimeDir, 'containers', 'auth.json');
  return join(configHome(env), 'containers', 'auth.json');
}

/** Every file credentials are read from, in order. */
export function authFilesToRead(options: AuthFileOptions = {}): string[] {
  const env = options.env ?? process.env;
  if (options.authFile) return [options.authFile];
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const home = env.HOME ?? homedir();
  const files: string[] = [];
  const runtimeDir = usableRuntimeDir(env, options.uid ?? process.getuid?.() ?? 0);
  if (runtimeDir) files.push(join(runtimeDir, 'containers', 'auth.json'));
  files.push(join(configHome(env), 'containers', 'auth.json'));
  files.push(env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(home, '.docker', 'config.json'));
  files.push(join(home, '.dockercfg'));
  return files;
}

function configHome(env: NodeJS.ProcessEnv): string {
  return env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
}

/** XDG_RUNTIME_DIR is someone else's after `su`: writing a password there would be wrong. */
function usableRuntimeDir(env: NodeJS.ProcessEnv, uid: number): string | undefined {
  const dir = env.XDG_RUNTIME_DIR;
  if (!dir?.startsWith('/')) return undefined;
  try {
    const st = statSync(dir);
    return st.isDirectory() && st.uid === uid ? dir : undefined;
  } catch {
    return undefined;
  }
}

function readAuthFile(path: string): AuthFileContent | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new NookError(`cannot read the credentials file ${path}: ${code ?? String(error)}`, { cause: error });
  }
  if (text.trim() === '') return {};
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (error) {
    throw new NookError(`the credentials file ${path} is not valid JSON`, { cause: error });
  }
  if (typeof content !== 'object' || content === null || Array.isArray(content)) {
    throw new NookError(`the credentials file ${path} is not a JSON object`);
  }
  if (path.endsWith('.dockercfg')) return { auths: content as AuthFileContent['auths'] }; // the legacy format has no "auths" level
  return content as AuthFileContent;
}

/**
 * The key an auth file uses for a registry. Docker writes Docker Hub as
 * "https://index.docker.io/v1/"; podman writes "docker.io". Keys may also be
 * URLs ("https://host/v2/"): only their host matters.
 */
export function normalizeAuthKey(key: string): string {
  let k = key.trim();
  if (/^[a-z]+:\/\//.test(k)) {
    k = k.replace(/^[a-z]+:\/\//, '');
    k = k.split('/')[0]!;
  }
  k = k.replace(/\/+$/, '');
  if (k === 'index.docker.io' || k === 'registry-1.docker.io' || k.startsWith('index.docker.io/')) k = k.replace(/^[^/]+/, 'docker.io');
  return k;
}

function decodeAuth(auth: string, file: string, key: string): Credentials {
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new NookError(`the credentials for ${key} in ${file} are malformed (expected base64 of "user:password")`);
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Credentials for a repository ("host/path"), or for a registry ("host"):
 * the most specific key of the first file that has any match.
 */
export function findCredentials(name: string, options: AuthFileOptions = {}): FoundCredentials | undefined {
  const wanted = normalizeAuthKey(name);
  for (const file of authFilesToRead(options)) {
    const content = readAuthFile(file);
    if (!content?.auths) continue;
    let best: { key: string; auth: string } | undefined;
    for (const [rawKey, entry] of Object.entries(content.auths)) {
      if (!entry?.auth) continue;
      const key = normalizeAuthKey(rawKey);
      const covers = wanted === key || wanted.startsWith(`${key}/`);
      if (covers && (!best || key.length > best.key.length)) best = { key, auth: entry.auth };
    }
    if (best) return { ...decodeAuth(best.auth, file, best.key), file, key: best.key };
  }
  return undefined;
}

/** Stores credentials for `key` (a registry host, or host/namespace) in the auth file. */
export function storeCredentials(key: string, credentials: Credentials, options: AuthFileOptions = {}): string {
  const file = defaultAuthFile(options);
  const content = readAuthFile(file) ?? {};
  const auths = { ...(content.auths ?? {}) };
  const normalized = normalizeAuthKey(key);
  for (const existing of Object.keys(auths)) if (normalizeAuthKey(existing) === normalized) delete auths[existing];
  auths[normalized] = { auth: Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64') };
  writeAuthFile(file, { ...content, auths });
  return file;
}

/** Removes the entry for `key`; returns false when there was none. */
export function removeCredentials(key: string, options: AuthFileOptions = {}): { file: string; removed: boolean } {
  const file = defaultAuthFile(options);
  const content = readAuthFile(file);
  if (!content?.auths) return { file, removed: false };
  const normalized = normalizeAuthKey(key);
  const auths = { ...content.auths };
  let removed = false;
  for (const existing of Object.keys(auths)) {
    if (normalizeAuthKey(existing) === normalized) {
      delete auths[existing];
      removed = true;
    }
  }
  if (removed) writeAuthFile(file, { ...content, auths });
  return { file, removed };
}

/** logout --all: empties "auths", keeping anything else the file holds. */
export function removeAllCredentials(options: AuthFileOptions = {}): string {
  const file = defaultAuthFile(options);
  const content = readAuthFile(file);
  if (content) writeAuthFile(file, { ...content, auths: {} });
  return file;
}

/** Other keys that cover `key` in the files read (logout tells about them, as podman does). */
export function otherCredentialSources(key: string, options: AuthFileOptions = {}): string[] {
  const normalized = normalizeAuthKey(key);
  const written = defaultAuthFile(options);
  return authFilesToRead(options).filter((file) => {
    if (file === written) return false;
    const auths = readAuthFile(file)?.auths ?? {};
    return Object.keys(auths).some((k) => normalizeAuthKey(k) === normalized);
  });
}

/** Write to a temp file (0600) in the same directory, fsync, rename: never a half-written password file. */
function writeAuthFile(path: string, content: AuthFileContent): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(content, null, '\t')}\n`);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(tmp);
    throw new NookError(`cannot write the credentials file ${path}`, { cause: error });
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (error) {
    unlinkSync(tmp);
    throw new NookError(`cannot write the credentials file ${path}: ${errnoCode(error) ?? String(error)}`, { cause: error });
  }
}
