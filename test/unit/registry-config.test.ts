import test from 'ava';
import { mkdtempSync, mkdirSync, writeFileSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseToml } from '../../src/image/registry/toml.js';
import { loadRegistriesConfig, parseRegistriesConf, pullSources, isInsecureRegistry, searchRegistries } from '../../src/image/registry/registries-conf.js';
import { findCredentials, storeCredentials, removeCredentials, removeAllCredentials, defaultAuthFile, normalizeAuthKey } from '../../src/image/registry/auth-file.js';
import { parseChallenges } from '../../src/image/registry/challenge.js';
import { tlsMaterialFor } from '../../src/image/registry/certs.js';

const PODMAN_STYLE = `
# comment
unqualified-search-registries = ["registry.fedoraproject.org", 'quay.io',
  "docker.io", # trailing comment
]
short-name-mode = "enforcing"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com:5000/bar"
insecure = false
blocked = false

[[registry.mirror]]
location = "mirror-1.local/foo"
insecure = true

[[registry.mirror]]
location = "mirror-2.local/foo"
pull-from-mirror = "digest-only"

[[registry]]
location = "insecure.local:5000"
insecure = true

[[registry]]
prefix = "*.blocked.org"
blocked = true

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
`;

test('toml subset: strings, arrays over lines, booleans, numbers, tables, arrays of tables, inline tables', (t) => {
  const doc = parseToml(`a = "x\\ty\\u00e9"\nb = 'c:\\\\raw'\nc = [1, 2_000, -3]\nd = true\n[t.u]\ne = { f = "g", h = false }\n[[r]]\nn = 1\n[[r.m]]\nk = "v"\n[[r]]\nn = 2\n`);
  t.deepEqual(doc, { a: 'x\tyé', b: 'c:\\\\raw', c: [1, 2000, -3], d: true, t: { u: { e: { f: 'g', h: false } } }, r: [{ n: 1, m: [{ k: 'v' }] }, { n: 2 }] });
  t.throws(() => parseToml('a = 1\na = 2\n'), { message: /line 2: duplicate key/ });
  t.throws(() => parseToml('a = "unterminated\n'), { message: /line 1: unterminated string/ });
  t.throws(() => parseToml('a = 1 b\n'), { message: /line 1: expected the end of the line/ });
});

test('registries.conf v2: search list, registries, mirrors, aliases', (t) => {
  const conf = parseRegistriesConf(PODMAN_STYLE, 'test.conf');
  t.deepEqual(conf.unqualifiedSearchRegistries, ['registry.fedoraproject.org', 'quay.io', 'docker.io']);
  t.is(conf.registries.length, 3);
  t.deepEqual(conf.registries[1], { prefix: 'insecure.local:5000', location: 'insecure.local:5000', insecure: true, blocked: false, mirrors: [] });
  t.is(conf.aliases.fedora, 'registry.fedoraproject.org/fedora');
  t.throws(() => parseRegistriesConf('[registries.search]\nregistries = ["a"]\n', 'old.conf'), { message: /old.conf: this is the version 1 format/ });
  t.throws(() => parseRegistriesConf('[[registry]]\ninsecure = "yes"\nlocation = "a"\n', 'x.conf'), { message: /x.conf: registry.insecure must be true or false/ });
});

test('pull sources: longest prefix, location rewriting, mirrors first, digest-only mirrors, blocked', (t) => {
  const conf = parseRegistriesConf(PODMAN_STYLE, 'test.conf');
  t.deepEqual(
    pullSources(conf, 'example.com/foo/app', false).map((s) => [s.name, s.insecure, s.mirror]),
    [
      ['mirror-1.local/foo/app', true, true],
      ['internal.example.com:5000/bar/app', false, false],
    ],
  );
  t.deepEqual(
    pullSources(conf, 'example.com/foo/app', true).map((s) => s.name),
    ['mirror-1.local/foo/app', 'mirror-2.local/foo/app', 'internal.example.com:5000/bar/app'],
  );
  // "example.com/foobar" is not under the prefix "example.com/foo"
  t.deepEqual(pullSources(conf, 'example.com/foobar/x', false).map((s) => s.name), ['example.com/foobar/x']);
  const [plain] = pullSources(conf, 'insecure.local:5000/a/b', false);
  t.deepEqual(plain, { name: 'insecure.local:5000/a/b', host: 'insecure.local:5000', repository: 'a/b', insecure: true, mirror: false });
  t.true(isInsecureRegistry(conf, 'insecure.local:5000'));
  t.true(isInsecureRegistry(conf, 'mirror-1.local'));
  t.false(isInsecureRegistry(conf, 'example.com'));
  t.throws(() => pullSources(conf, 'x.blocked.org/a', false), { message: /registry \*\.blocked\.org is blocked in test.conf/ });
});

test('registries.conf files: the user file replaces the system one, drop-ins override', (t) => {
  const home = mkdtempSync(join(tmpdir(), 'nook-regconf-'));
  mkdirSync(join(home, '.config/containers/registries.conf.d'), { recursive: true });
  writeFileSync(join(home, '.config/containers/registries.conf'), 'unqualified-search-registries = ["one.example"]\n[[registry]]\nlocation = "a.example"\ninsecure = true\n');
  writeFileSync(join(home, '.config/containers/registries.conf.d/50-x.conf'), '[[registry]]\nlocation = "a.example"\ninsecure = false\n');
  const conf = loadRegistriesConfig({ HOME: home });
  t.deepEqual(conf.unqualifiedSearchRegistries, ['one.example']);
  t.is(conf.registries.filter((r) => r.prefix === 'a.example').length, 1);
  t.false(isInsecureRegistry(conf, 'a.example'));
  t.deepEqual(searchRegistries(conf, {}), ['one.example']);
  t.deepEqual(searchRegistries(conf, { NOOK_UNQUALIFIED_SEARCH_REGISTRIES: 'x.io, y.io' }), ['x.io', 'y.io']);
  t.deepEqual(searchRegistries(parseRegistriesConf(''), {}), ['docker.io']);
  const only = join(home, 'only.conf');
  writeFileSync(only, 'unqualified-search-registries = []\n');
  t.deepEqual(loadRegistriesConfig({ HOME: home, CONTAINERS_REGISTRIES_CONF: only }).unqualifiedSearchRegistries, []);
});

test('auth.json: store (0600), find the most specific key, docker config, remove, logout --all', (t) => {
  const home = mkdtempSync(join(tmpdir(), 'nook-auth-'));
  const env = { HOME: home };
  const file = defaultAuthFile({ env });
  t.is(file, join(home, '.config/containers/auth.json'));
  t.is(findCredentials('quay.io/team/app', { env }), undefined);

  t.is(storeCredentials('quay.io', { username: 'u', password: 'p:with:colons' }, { env }), file);
  t.is(statSync(file).mode & 0o777, 0o600);
  storeCredentials('quay.io/team', { username: 'team', password: 't' }, { env });
  t.like(findCredentials('quay.io/team/app', { env }), { username: 'team', password: 't', key: 'quay.io/team' });
  t.like(findCredentials('quay.io/other/app', { env }), { username: 'u', password: 'p:with:colons', key: 'quay.io' });
  t.is(findCredentials('quay.io.evil/x', { env }), undefined);

  // docker's config, with Docker Hub under its legacy URL key
  mkdirSync(join(home, '.docker'));
  writeFileSync(join(home, '.docker/config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') } } }));
  t.like(findCredentials('docker.io/library/alpine', { env }), { username: 'hub', password: 'pw' });
  t.is(normalizeAuthKey('https://127.0.0.1:5000/v2/'), '127.0.0.1:5000');

  t.deepEqual(removeCredentials('quay.io', { env }), { file, removed: true });
  t.deepEqual(removeCredentials('quay.io', { env }), { file, removed: false });
  removeAllCredentials({ env });
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { auths: {} });

  // --authfile / REGISTRY_AUTH_FILE replace the search entirely
  const other = join(home, 'other.json');
  storeCredentials('r.example', { username: 'a', password: 'b' }, { env, authFile: other });
  t.like(findCredentials('r.example/x', { env: { ...env, REGISTRY_AUTH_FILE: other } }), { username: 'a', file: other });
  t.is(findCredentials('docker.io/library/alpine', { env, authFile: other }), undefined);
  writeFileSync(other, '{not json');
  t.throws(() => findCredentials('r.example', { env, authFile: other }), { message: /is not valid JSON/ });
});

test('WWW-Authenticate: bearer with parameters, basic, several challenges', (t) => {
  t.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
  t.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  t.deepEqual(parseChallenges('Basic realm="a\\"b", Bearer realm=https://x/token, error=invalid_token'), [
    { scheme: 'basic', params: { realm: 'a"b' } },
    { scheme: 'bearer', params: { realm: 'https://x/token', error: 'invalid_token' } },
  ]);
  t.deepEqual(parseChallenges(undefined), []);
});

test('certs.d: extra CAs are added to the system roots, a client cert needs its key, --cert-dir wins', (t) => {
  const home = mkdtempSync(join(tmpdir(), 'nook-certs-'));
  const dir = join(home, '.config/containers/certs.d/reg.example:5000');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.crt'), 'CA-PEM');
  const material = tlsMaterialFor('reg.example:5000', { env: { HOME: home } });
  t.is(material.certDir, dir);
  t.true(material.ca!.length >= 2);
  t.is(material.ca![material.ca!.length - 1], 'CA-PEM');
  t.is(tlsMaterialFor('other:5000', { env: { HOME: home } }).certDir, undefined);
  writeFileSync(join(dir, 'client.cert'), 'CERT');
  t.throws(() => tlsMaterialFor('reg.example:5000', { env: { HOME: home } }), { message: /has no matching key client.key/ });
  writeFileSync(join(dir, 'client.key'), 'KEY');
  t.like(tlsMaterialFor('reg.example:5000', { env: { HOME: home } }), { cert: 'CERT', key: 'KEY' });
  t.throws(() => tlsMaterialFor('x', { certDir: join(home, 'nope') }), { message: /is not a directory/ });
});
