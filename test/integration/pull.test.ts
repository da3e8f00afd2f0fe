/**
 * `nook pull`, `login` and `logout` against the harness's real registry
 * (docker-registry with TLS from a throw-away CA and htpasswd), as the
 * unprivileged test user: tags, digests, Docker and OCI manifests, the
 * multi-arch index, credentials right and wrong, TLS trust, short names and
 * registries.conf, concurrent pulls.
 */
import test from 'ava';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, runNook, spawnNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';
import { fixtureIndex, testRegistry } from '../helpers/fixtures.js';
import { ImageStore } from '../../src/image/store.js';
import { hostPlatform } from '../../src/image/registry/platform.js';

const registry = testRegistry();
const facts = fixtureIndex();
const creds = `${registry.user}:${registry.password}`;
const hex = (digest: string) => digest.replace(/^sha256:/, '');

test.before((t) => {
  if (process.getuid?.() === 0) t.fail('run as the unprivileged test user (test/harness/run.sh does): a pull as root proves nothing about rootless extraction');
});

/** The store's environment without XDG_RUNTIME_DIR, so that auth.json lands in the test's HOME. */
function env(store: TempStore, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { ...store.env, XDG_RUNTIME_DIR: undefined, REGISTRY_AUTH_FILE: undefined, NOOK_UNQUALIFIED_SEARCH_REGISTRIES: undefined, ...extra };
}

function nook(store: TempStore, args: string[], extra: Record<string, string | undefined> = {}, input?: string): Promise<NookResult> {
  return runNook(args, { root: store.root, runroot: store.runroot, env: env(store, extra), timeout: 90_000, ...(input !== undefined ? { input } : {}) });
}

function pull(store: TempStore, args: string[], extra: Record<string, string | undefined> = {}): Promise<NookResult> {
  return nook(store, ['pull', '--cert-dir', registry.certDir, '--creds', creds, ...args], extra);
}

function openStore(store: TempStore): ImageStore {
  return new ImageStore({ root: store.root, runRoot: store.runroot });
}

/** storage/ has nothing half-done: no partial download, no work space left. */
function assertNoLeftovers(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, store: TempStore): void {
  const storage = join(store.root, 'storage');
  const list = (sub: string) => (existsSync(join(storage, sub)) ? readdirSync(join(storage, sub)) : []);
  t.deepEqual(list('partial').filter((f) => !f.endsWith('.lock')), [], 'no partial downloads left');
  t.deepEqual(list('tmp'), [], 'no work space left');
}

test('pull by tag: prints the image id, unpacks the layer, names the image', async (t) => {
  const store = await tempStore(t);
  const result = await pull(store, [registry.images.busybox]);
  t.is(result.exitCode, 0, describe(result));
  t.is(result.stdout.trim().split('\n').pop(), hex(facts.busybox.configDigest));
  t.regex(result.stderr, new RegExp(`Trying to pull ${registry.images.busybox}`));
  t.regex(result.stderr, new RegExp(`Copying blob ${hex(facts.busybox.layerDigests[0]!).slice(0, 12)}`));

  const image = await openStore(store).findImage(registry.images.busybox);
  t.truthy(image, 'the name points at the image');
  t.is(image!.record.id, hex(facts.busybox.configDigest));
  t.is(image!.record.manifestDigest, facts.busybox.manifestDigest as string as `sha256:${string}`);
  t.deepEqual(image!.record.layers.map((l) => l.diffId), facts.busybox.diffIds);
  const diff = join(store.root, 'storage/layers', hex(facts.busybox.diffIds[0]!), 'diff');
  t.true(statSync(join(diff, 'bin/busybox')).isFile(), 'the layer is unpacked');
  assertNoLeftovers(t, store);

  // again: nothing to download
  const again = await pull(store, [registry.images.busybox]);
  t.is(again.exitCode, 0, describe(again));
  t.regex(again.stderr, /skipped: already exists/);
});

test('pull by digest; -q prints only the id; a Docker schema 2 manifest works too', async (t) => {
  const store = await tempStore(t);
  const byDigest = `${registry.host}/busybox@${facts.busybox.manifestDigest}`;
  const result = await pull(store, ['-q', byDigest]);
  t.is(result.exitCode, 0, describe(result));
  t.is(result.stdout.trim(), hex(facts.busybox.configDigest));
  t.is(result.stderr.trim(), '');
  const image = await openStore(store).findImage(byDigest);
  t.truthy(image);
  t.true(image!.record.repoDigests.includes(byDigest));
  t.is(image!.record.id, hex(facts.busybox.configDigest));

  const wrongDigest = `${registry.host}/busybox@sha256:${'0'.repeat(64)}`;
  const missing = await pull(store, [wrongDigest]);
  t.is(missing.exitCode, 125);
  t.regex(missing.stderr, new RegExp(`unknown manifest ${registry.host}/busybox@sha256:0+`));

  const docker = await pull(store, [registry.images.busyboxDocker]);
  t.is(docker.exitCode, 0, describe(docker));
  const dockerImage = await openStore(store).findImage(registry.images.busyboxDocker);
  t.is(dockerImage!.record.manifestMediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  t.deepEqual(dockerImage!.record.layers.map((l) => l.diffId), facts.busybox.diffIds);
});

test("a multi-arch index: the host's platform by default, --platform picks another, a missing one lists what there is", async (t) => {
  const store = await tempStore(t);
  const host = hostPlatform();
  const native = facts.multiArch.manifests.find((m) => m.platform.architecture === host.architecture)!;
  const foreign = facts.multiArch.manifests.find((m) => m !== native)!;
  t.truthy(native, `the index has the host's architecture ${host.architecture}`);

  const result = await pull(store, [registry.images.multiArch]);
  t.is(result.exitCode, 0, describe(result));
  t.is(result.stdout.trim().split('\n').pop(), hex(native.configDigest));
  const image = await openStore(store).findImage(registry.images.multiArch);
  t.is(image!.record.manifestDigest, native.manifestDigest as string as `sha256:${string}`);
  t.true(image!.record.repoDigests.includes(`${registry.host}/multiarch@${facts.multiArch.indexDigest}`));

  const other = `${foreign.platform.os}/${foreign.platform.architecture}${foreign.platform.variant ? `/${foreign.platform.variant}` : ''}`;
  const chosen = await pull(store, ['--platform', other, registry.images.multiArch]);
  t.is(chosen.exitCode, 0, describe(chosen));
  t.is(chosen.stdout.trim().split('\n').pop(), hex(foreign.configDigest));

  const none = await pull(store, ['--platform', 'linux/s390x', registry.images.multiArch]);
  t.is(none.exitCode, 125);
  const line = none.stderr.trim().split('\n').pop()!;
  t.regex(line, new RegExp(`^Error: no image for linux/s390x in ${registry.images.multiArch}; it has linux/amd64, linux/arm64/v8`));
});

test('credentials: a wrong password and no credentials are told apart; login checks before storing, logout forgets', async (t) => {
  const store = await tempStore(t);
  const wrong = await nook(store, ['pull', '--cert-dir', registry.certDir, '--creds', `${registry.user}:wrong-${registry.password}`, registry.images.busybox]);
  t.is(wrong.exitCode, 125);
  t.is(wrong.stderr.trim().split('\n').pop(), `Error: wrong username or password for ${registry.host} (from --creds)`);
  const anonymous = await nook(store, ['pull', '--cert-dir', registry.certDir, registry.images.busybox]);
  t.is(anonymous.exitCode, 125);
  t.is(anonymous.stderr.trim().split('\n').pop(), `Error: ${registry.host} requires authentication: log in with nook login ${registry.host} or pass --creds`);
  t.deepEqual((await openStore(store).listImages()).length, 0);

  const authFile = join(store.home, '.config/containers/auth.json');
  const badLogin = await nook(store, ['login', '--cert-dir', registry.certDir, '-u', registry.user, '-p', 'not-it', registry.host]);
  t.is(badLogin.exitCode, 125);
  t.is(badLogin.stderr.trim(), `Error: wrong username or password for ${registry.host}`);
  t.false(existsSync(authFile), 'refused credentials are not stored');

  const login = await nook(store, ['login', '--cert-dir', registry.certDir, '-u', registry.user, '--password-stdin', registry.host], {}, `${registry.password}\n`);
  t.is(login.exitCode, 0, describe(login));
  t.is(login.stdout.trim(), 'Login Succeeded!');
  t.is(statSync(authFile).mode & 0o777, 0o600);
  const getLogin = await nook(store, ['login', '--get-login', registry.host]);
  t.is(getLogin.stdout.trim(), registry.user);

  const pulled = await nook(store, ['pull', '--cert-dir', registry.certDir, registry.images.busybox]);
  t.is(pulled.exitCode, 0, describe(pulled));

  const logout = await nook(store, ['logout', registry.host]);
  t.is(logout.exitCode, 0, describe(logout));
  t.is(logout.stdout.trim(), `Removed login credentials for ${registry.host}`);
  const notLoggedIn = await nook(store, ['logout', registry.host]);
  t.is(notLoggedIn.exitCode, 125);
  t.is(notLoggedIn.stderr.trim(), `Error: not logged into ${registry.host}`);
  const afterLogout = await nook(store, ['pull', '--cert-dir', registry.certDir, registry.images.layered]);
  t.is(afterLogout.exitCode, 125);
  t.regex(afterLogout.stderr, /requires authentication/);

  // --authfile: written and read there only
  const other = join(store.home, 'elsewhere.json');
  const loginOther = await nook(store, ['login', '--cert-dir', registry.certDir, '--authfile', other, '-u', registry.user, '-p', registry.password, registry.host]);
  t.is(loginOther.exitCode, 0, describe(loginOther));
  t.false(existsSync(authFile) && (await import('node:fs')).readFileSync(authFile, 'utf8').includes(registry.host));
  const viaAuthfile = await nook(store, ['pull', '--cert-dir', registry.certDir, '--authfile', other, registry.images.layered]);
  t.is(viaAuthfile.exitCode, 0, describe(viaAuthfile));
});

test('TLS: a certs.d CA that did not sign the registry certificate, and the system bundle that did: trusted through the bundle', async (t) => {
  // the certs.d CA alone is tried first (it is cheaper than the system bundle); the bundle is the fallback
  const store = await tempStore(t);
  const systemCas = readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
  const unrelated = systemCas.slice(0, systemCas.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----'.length);
  t.true(unrelated.startsWith('-----BEGIN CERTIFICATE-----'), 'a CA from the system bundle to use as an unrelated one');
  const certDir = join(store.home, 'other-ca');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'ca.crt'), `${unrelated}\n`);
  const bundle = join(store.home, 'bundle.pem');
  writeFileSync(bundle, readFileSync(registry.caFile));
  const result = await nook(store, ['--debug', 'pull', '--cert-dir', certDir, '--creds', creds, '-q', registry.images.busybox], { SSL_CERT_FILE: bundle });
  t.is(result.exitCode, 0, describe(result));
  t.regex(result.stderr, /its certificate is not signed by the CAs of .*other-ca; trying the system's as well/);
  // with neither, still the one-line refusal
  const refused = await nook(store, ['pull', '--cert-dir', certDir, '--creds', creds, '-q', registry.images.layered], { SSL_CERT_FILE: join(certDir, 'ca.crt') });
  t.is(refused.exitCode, 125);
  t.regex(refused.stderr.trim().split('\n').pop()!, /^Error: TLS failure talking to .*: certificate signed by unknown authority/);
});

test('TLS: an unknown CA fails with the fix; certs.d and --tls-verify=false work', async (t) => {
  const store = await tempStore(t);
  const certsD = join(store.home, '.config/containers/certs.d', registry.host);
  const untrusted = await nook(store, ['pull', '--creds', creds, registry.images.busybox]);
  t.is(untrusted.exitCode, 125);
  t.is(
    untrusted.stderr.trim().split('\n').pop(),
    `Error: TLS failure talking to ${registry.host}: certificate signed by unknown authority; put its CA certificate in ${certsD}/ca.crt (or use --cert-dir), or use --tls-verify=false`,
  );

  const unverified = await nook(store, ['pull', '--tls-verify=false', '--creds', creds, '-q', registry.images.busybox]);
  t.is(unverified.exitCode, 0, describe(unverified));

  mkdirSync(certsD, { recursive: true });
  copyFileSync(registry.caFile, join(certsD, 'ca.crt'));
  const trusted = await nook(store, ['pull', '--creds', creds, '-q', registry.images.layered]);
  t.is(trusted.exitCode, 0, describe(trusted));
  const login = await nook(store, ['login', '-u', registry.user, '-p', registry.password, registry.host]);
  t.is(login.exitCode, 0, describe(login));
});

test('one-line errors: unknown tag, unknown repository, unreachable registry, bad reference', async (t) => {
  const store = await tempStore(t);
  const tag = await pull(store, [`${registry.host}/busybox:no-such-tag`]);
  t.is(tag.exitCode, 125);
  t.is(tag.stderr.trim().split('\n').pop(), `Error: unknown image or tag ${registry.host}/busybox:no-such-tag`);

  const repo = await pull(store, [`${registry.host}/no/such/repo:1`]);
  t.is(repo.exitCode, 125);
  t.regex(repo.stderr.trim().split('\n').pop()!, new RegExp(`^Error: unknown image (or tag )?${registry.host}/no/such/repo`));

  const down = await pull(store, ['127.0.0.1:1/busybox']);
  t.is(down.exitCode, 125);
  t.is(down.stderr.trim().split('\n').pop(), 'Error: registry 127.0.0.1:1 is unreachable: connection refused');

  const bad = await pull(store, ['Not/Valid']);
  t.is(bad.exitCode, 125);
  t.regex(bad.stderr, /invalid image reference "Not\/Valid": repository name must be lowercase/);
});

test('short names go through the unqualified-search registries; registries.conf locations rewrite where content comes from', async (t) => {
  const store = await tempStore(t);
  const short = await pull(store, ['busybox'], { NOOK_UNQUALIFIED_SEARCH_REGISTRIES: `127.0.0.1:1,${registry.host}` });
  t.is(short.exitCode, 0, describe(short));
  t.regex(short.stderr, /Trying to pull 127\.0\.0\.1:1\/busybox:latest/);
  t.truthy(await openStore(store).findImage(`${registry.host}/busybox:latest`));

  const confDir = join(store.home, '.config/containers');
  mkdirSync(confDir, { recursive: true });
  writeFileSync(
    join(confDir, 'registries.conf'),
    [
      `unqualified-search-registries = ["${registry.host}"]`,
      '[[registry]]',
      'prefix = "registry.example/team"',
      `location = "${registry.host}"`,
      '[[registry.mirror]]',
      'location = "127.0.0.1:1/down"',
      '[[registry]]',
      'location = "blocked.example"',
      'blocked = true',
      '',
    ].join('\n'),
  );
  const viaLocation = await pull(store, ['registry.example/team/layered:latest']);
  t.is(viaLocation.exitCode, 0, describe(viaLocation));
  // the mirror first (down), then the location
  t.regex(viaLocation.stderr, /Trying to pull 127\.0\.0\.1:1\/down\/layered:latest\.\.\.\n(.*\n)?Trying to pull 127\.0\.0\.1:\d+\/layered:latest/);
  t.truthy(await openStore(store).findImage('registry.example/team/layered:latest'), 'the image keeps the name asked for');

  const fromConf = await pull(store, ['-q', 'multiarch']);
  t.is(fromConf.exitCode, 0, describe(fromConf));

  const blocked = await pull(store, ['blocked.example/x']);
  t.is(blocked.exitCode, 125);
  t.regex(blocked.stderr, /registry blocked\.example is blocked in .*registries\.conf/);
});

test('two concurrent pulls of the same image both succeed and store each layer once', async (t) => {
  const store = await tempStore(t);
  const args = ['pull', '--cert-dir', registry.certDir, '--creds', creds, registry.images.layered];
  const target = { root: store.root, runroot: store.runroot, env: env(store) };
  const [a, b] = await Promise.all([spawnNook(args, target), spawnNook(args, target)]);
  t.is(a.exitCode, 0, a.stderr);
  t.is(b.exitCode, 0, b.stderr);
  t.is(a.stdout.trim().split('\n').pop(), hex(facts.layered.configDigest));
  t.is(b.stdout.trim().split('\n').pop(), hex(facts.layered.configDigest));
  t.deepEqual(readdirSync(join(store.root, 'storage/layers')).sort(), facts.layered.diffIds.map(hex).sort());
  t.is((await openStore(store).listImages()).length, 1);
  assertNoLeftovers(t, store);
});

test('layers shared between images are stored once and not downloaded again', async (t) => {
  const store = await tempStore(t);
  const first = await pull(store, [registry.images.busybox]);
  t.is(first.exitCode, 0, describe(first));
  const second = await pull(store, [registry.images.layered]);
  t.is(second.exitCode, 0, describe(second));
  const shared = facts.layered.layerDigests.filter((d) => facts.busybox.layerDigests.includes(d));
  t.true(shared.length > 0, 'the fixtures share a layer');
  for (const digest of shared) t.regex(second.stderr, new RegExp(`Copying blob ${hex(digest).slice(0, 12)} skipped: already exists`));
  t.is(readdirSync(join(store.root, 'storage/layers')).length, new Set([...facts.busybox.diffIds, ...facts.layered.diffIds]).size);
});
