/**
 * TLS trust for one registry, as podman sets it up: the system's CA bundle,
 * plus the per-registry directory of certs.d (the first of
 * ~/.config/containers/certs.d/HOST:PORT, /etc/containers/certs.d/HOST:PORT,
 * /etc/docker/certs.d/HOST:PORT that exists, or --cert-dir), where *.crt files
 * are extra CAs and a *.cert with its *.key is a client certificate.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NookError, errnoCode } from '../../lib/errors.js';

export interface TlsMaterial {
  /** undefined: Node's defaults (no extra CA and no system bundle found) */
  ca: string[] | undefined;
  /** the CAs of the certs.d directory alone (also in `ca`) */
  extraCas: string[];
  cert: string | undefined;
  key: string | undefined;
  /** the certs.d directory used, if any (for error messages) */
  certDir: string | undefined;
}

/** Where Go (and so podman) finds the system's trusted CAs on common distributions. */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Arch, Gentoo
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine
];

export function certsDirCandidates(host: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME ?? homedir();
  const configHome = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return [join(configHome, 'containers', 'certs.d', host), join('/etc/containers/certs.d', host), join('/etc/docker/certs.d', host)];
}

/** The user's certs.d path for a registry: where an error message tells them to put a CA. */
export function userCertsDir(host: string, env: NodeJS.ProcessEnv = process.env): string {
  return certsDirCandidates(host, env)[0]!;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function systemBundle(env: NodeJS.ProcessEnv): string | undefined {
  const candidates = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE, ...SYSTEM_BUNDLES] : SYSTEM_BUNDLES;
  for (const path of candidates) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      // next candidate
    }
  }
  return undefined;
}

/**
 * TLS material for `host` ("name" or "name:port"). `certDir` is --cert-dir,
 * which replaces the certs.d lookup.
 */
export function tlsMaterialFor(host: string, options: { certDir?: string | undefined; env?: NodeJS.ProcessEnv } = {}): TlsMaterial {
  const env = options.env ?? process.env;
  let dir: string | undefined;
  if (options.certDir) {
    if (!isDirectory(options.certDir)) throw new NookError(`--cert-dir ${options.certDir} is not a directory`);
    dir = options.certDir;
  } else {
    dir = certsDirCandidates(host, env).find(isDirectory);
  }
  const extraCas: string[] = [];
  let cert: string | undefined;
  let key: string | undefined;
  if (dir) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (error) {
      throw new NookError(`cannot read the certificate directory ${dir}: ${errnoCode(error) ?? String(error)}`, { cause: error });
    }
    const read = (name: string) => {
      try {
        return readFileSync(join(dir!, name), 'utf8');
      } catch (error) {
        throw new NookError(`cannot read ${join(dir!, name)}: ${errnoCode(error) ?? String(error)}`, { cause: error });
      }
    };
    for (const name of names) {
      if (name.endsWith('.crt')) extraCas.push(read(name));
      else if (name.endsWith('.cert')) {
        const keyName = `${name.slice(0, -'.cert'.length)}.key`;
        if (!names.includes(keyName)) throw new NookError(`client certificate ${join(dir, name)} has no matching key ${keyName}`);
        cert = read(name);
        key = read(keyName);
      } else if (name.endsWith('.key')) {
        const certName = `${name.slice(0, -'.key'.length)}.cert`;
        if (!names.includes(certName)) throw new NookError(`client key ${join(dir, name)} has no matching certificate ${certName}`);
      }
    }
  }
  const bundle = systemBundle(env);
  // Node replaces its own roots when `ca` is given, so the defaults must be passed along.
  const ca = bundle === undefined && extraCas.length === 0 ? undefined : [...(bundle === undefined ? rootCertificates : [bundle]), ...extraCas];
  return { ca, extraCas, cert, key, certDir: dir };
}
