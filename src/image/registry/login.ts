/**
 * `nook login`: check credentials against the registry, then store them.
 * The check is the one docker and podman do: GET /v2/ through the whole
 * authentication flow (Basic, or a token from the realm with the credentials).
 */
import { NookError } from '../../lib/errors.js';
import { normalizeAuthKey, storeCredentials, type Credentials } from './auth-file.js';
import { isInsecureRegistry, loadRegistriesConfig } from './registries-conf.js';
import { RegistrySession } from './session.js';
import { Transport } from './transport.js';

export interface LoginOptions {
  authFile?: string | undefined;
  tlsVerify?: boolean | undefined;
  certDir?: string | undefined;
  env?: NodeJS.ProcessEnv;
  log?: ((line: string) => void) | undefined;
}

/**
 * The auth-file key for what the user typed: "quay.io", "host:5000",
 * "quay.io/team" (credentials for one namespace), or a URL.
 */
export function registryKey(input: string): string {
  const key = normalizeAuthKey(input);
  if (!key || key.includes(' ') || key.startsWith('/')) throw new NookError(`invalid registry "${input}"`);
  return key;
}

/** Checks `credentials` against the registry of `key`; stores them when accepted. Returns the auth file written. */
export async function loginRegistry(key: string, credentials: Credentials, options: LoginOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const host = key.split('/')[0]!;
  const registries = loadRegistriesConfig(env);
  const transport = new Transport({
    tlsVerify: options.tlsVerify,
    certDir: options.certDir,
    isInsecure: (h) => isInsecureRegistry(registries, h),
    env,
    log: options.log,
  });
  try {
    const session = new RegistrySession({ transport, host, repository: '', credentials });
    await session.checkLogin();
  } finally {
    transport.close();
  }
  return storeCredentials(key, credentials, { authFile: options.authFile, env });
}
