import test from 'ava';
import { NookError } from '../../src/lib/errors.js';
import { formatReference, isShortName, localReference, parseReference, pullCandidates, splitReference } from '../../src/image/reference.js';
import { parseDigest, sha256Of } from '../../src/image/digest.js';

const hex = 'a'.repeat(64);

test('short names normalise to docker.io/library', (t) => {
  t.is(formatReference(parseReference('busybox')), 'docker.io/library/busybox');
  t.is(formatReference(parseReference('busybox:1.36')), 'docker.io/library/busybox:1.36');
  t.is(formatReference(parseReference('user/app:v1')), 'docker.io/user/app:v1');
  t.is(formatReference(parseReference('docker.io/busybox')), 'docker.io/library/busybox');
  t.is(formatReference(parseReference('index.docker.io/busybox')), 'docker.io/library/busybox');
});

test('registry hosts, ports and localhost', (t) => {
  t.deepEqual(parseReference('localhost/busybox:tag'), { domain: 'localhost', path: 'busybox', tag: 'tag', digest: undefined });
  t.deepEqual(parseReference('host:5000/a/b:tag'), { domain: 'host:5000', path: 'a/b', tag: 'tag', digest: undefined });
  t.deepEqual(parseReference('127.0.0.1:5000/a'), { domain: '127.0.0.1:5000', path: 'a', tag: undefined, digest: undefined });
  t.deepEqual(parseReference('quay.io/busybox'), { domain: 'quay.io', path: 'busybox', tag: undefined, digest: undefined });
  t.deepEqual(parseReference('localhost:5000/x'), { domain: 'localhost:5000', path: 'x', tag: undefined, digest: undefined });
});

test('digests', (t) => {
  const ref = parseReference(`busybox@sha256:${hex}`);
  t.is(ref.digest, `sha256:${hex}`);
  t.is(ref.tag, undefined);
  t.is(formatReference(parseReference(`a/b:t@sha256:${hex}`)), `docker.io/a/b:t@sha256:${hex}`);
  t.throws(() => parseReference('busybox@sha256:abc'), { instanceOf: NookError, message: /not a valid digest/ });
  t.throws(() => parseReference(`busybox@sha512:${'a'.repeat(128)}`), { message: /only sha256/ });
  t.is(parseDigest(sha256Of('')), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('bad references are one-line errors', (t) => {
  for (const bad of ['', 'BusyBox', 'a//b', 'a:b:c', '-x', 'x:', 'x:-bad', `x:${'t'.repeat(129)}`, 'a/../b', `${'a'.repeat(300)}`]) {
    const error = t.throws(() => parseReference(bad), { instanceOf: NookError }, bad);
    t.false(error?.message.includes('\n'));
  }
  t.throws(() => parseReference('BusyBox'), { message: /lowercase/ });
});

test('local names and short-name detection', (t) => {
  t.is(formatReference(localReference('myimg')), 'localhost/myimg:latest');
  t.is(formatReference(localReference('myimg:v2')), 'localhost/myimg:v2');
  t.is(formatReference(localReference('quay.io/x/y')), 'quay.io/x/y:latest');
  t.true(isShortName('busybox'));
  t.true(isShortName('a/b'));
  t.false(isShortName('localhost/b'));
  t.deepEqual(splitReference('a/b:c'), { domain: undefined, path: 'a/b', tag: 'c', digest: undefined });
});

test('pull candidates follow the search list', (t) => {
  t.deepEqual(pullCandidates('busybox', ['docker.io', 'quay.io']).map(formatReference), ['docker.io/library/busybox:latest', 'quay.io/busybox:latest']);
  t.deepEqual(pullCandidates('localhost:5000/x:1', []).map(formatReference), ['localhost:5000/x:1']);
  t.throws(() => pullCandidates('busybox', []), { message: /no unqualified-search registries/ });
});
