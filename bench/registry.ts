/**
 * A local registry for the pull benchmark: the test harness's own
 * (test/fixtures/registry.sh: Debian's docker-registry on a free 127.0.0.1
 * port, TLS from a throw-away CA, htpasswd auth, the busybox fixtures pushed
 * by skopeo), with the Debian image pushed as well.
 *
 * The script runs in a bash that holds the registry for as long as its stdin
 * is open: closing it (or this process dying) stops the registry, through the
 * script's own stop function and its --pdeathsig.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { runChecked } from './command.js';
import { paths } from './checkout.js';

export interface Registry {
  /** 127.0.0.1:PORT */
  host: string;
  /** a directory with ca.crt, for --cert-dir */
  certDir: string;
  /** user:password for --creds */
  creds: string;
  stop(): Promise<void>;
}

const HOLDER = `
set -euo pipefail
source "$0"
trap stop_test_registry EXIT
start_test_registry "$1" "$2" >&2
echo "ready $NOOK_TEST_REGISTRY $NOOK_TEST_REGISTRY_CERT_DIR $NOOK_TEST_REGISTRY_USER:$NOOK_TEST_REGISTRY_PASSWORD"
read -r _ || true
`;

export async function startRegistry(stateDir: string, fixturesDir: string): Promise<Registry> {
  const child = spawn('bash', ['-c', HOLDER, paths.registryScript, stateDir, fixturesDir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve(out.slice(0, newline));
    });
    child.once('close', (code) => reject(new Error(`the registry did not start (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`)));
  });
  const [, host, certDir, creds] = line.split(' ');
  if (!host || !certDir || !creds) throw new Error(`unexpected answer from registry.sh: ${line}`);
  return {
    host,
    certDir,
    creds,
    stop: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

/** Copies an OCI layout (ref "latest") into the registry as REPO:latest. */
export async function pushImage(registry: Registry, ociLayout: string, repository: string): Promise<string> {
  const ref = `${registry.host}/${repository}:latest`;
  await runChecked({
    file: 'skopeo',
    args: ['--insecure-policy', 'copy', '--quiet', '--dest-creds', registry.creds, '--dest-cert-dir', registry.certDir, `oci:${ociLayout}:latest`, `docker://${ref}`],
  });
  return ref;
}

export function registryStateDir(work: string): string {
  return join(work, 'registry');
}
