import test from 'ava';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NookError } from '../../src/lib/errors.js';
import { resolveName } from '../../src/image/names.js';
import { applyChanges } from '../../src/image/changes.js';
import { humanAge, humanSize } from '../../src/image/views.js';
import { readImageFile } from '../../src/image/layer-files.js';
import { parseImageConfig, type ImageView } from '../../src/image/records.js';
import { RecordingSyscalls } from '../../src/syscalls/fake.js';

const id = (c: string) => c.repeat(64);
function view(idChar: string, names: string[], repoDigests: string[] = []): ImageView {
  return { record: { id: id(idChar), layers: [], repoDigests, stored: '2024-01-01T00:00:00Z', source: 'test' }, names };
}

const images = [
  view('a', ['docker.io/library/busybox:latest', 'docker.io/library/busybox:1.36']),
  view('b', ['localhost/busybox:latest']),
  view('c', ['quay.io/team/app:v1', 'localhost/mine:latest'], [`quay.io/team/app@sha256:${'d'.repeat(64)}`]),
  view('e', ['127.0.0.1:5000/x/tool:latest', 'registry.example/x/tool:latest']),
  view('f', []),
];

const find = (input: string, search: string[] = ['docker.io']) => resolveName({ images, searchRegistries: search }, input);

test('short names: localhost first, then the search registries', (t) => {
  t.is(find('busybox')?.record.id, id('b'));
  t.is(find('busybox')?.matchedName, 'localhost/busybox:latest');
  t.is(find('busybox:1.36')?.record.id, id('a'));
  t.is(find('library/busybox')?.record.id, id('a'));
  t.is(find('docker.io/busybox')?.record.id, id('a'));
  t.is(find('docker.io/library/busybox:latest')?.matchedName, 'docker.io/library/busybox:latest');
});

test('short names found in any registry when only one has them; ambiguity is an error', (t) => {
  t.is(find('team/app:v1')?.record.id, id('c'));
  t.is(find('app:v1'), null, 'a short name matches whole repository paths, not their last component');
  t.is(find('x/tool')?.record.id, id('e'), 'two names of one image are not ambiguous');
  const twice = [...images, view('9', ['other.example/x/tool:latest'])];
  t.throws(() => resolveName({ images: twice, searchRegistries: ['docker.io'] }, 'x/tool'), { instanceOf: NookError, message: /x\/tool is ambiguous: it could be 127\.0\.0\.1:5000\/x\/tool:latest or other\.example\/x\/tool:latest or registry\.example\/x\/tool:latest/ });
});

test('ids, id prefixes and digests', (t) => {
  t.is(find(id('f'))?.record.id, id('f'));
  t.is(find(`sha256:${id('f')}`)?.record.id, id('f'));
  t.is(find('fff')?.record.id, id('f'));
  t.is(find('ff'), null, 'prefixes need 3 digits');
  t.is(find(`quay.io/team/app@sha256:${'d'.repeat(64)}`)?.record.id, id('c'));
  t.is(find(`team/app@sha256:${'d'.repeat(64)}`)?.record.id, id('c'));
  t.is(find(`busybox@sha256:${'d'.repeat(64)}`), null);
  t.is(find('nothing'), null);
  t.throws(() => find('Bad Name'), { instanceOf: NookError });
});

test('--change instructions', (t) => {
  const c = applyChanges({ Env: ['PATH=/bin'] }, ['CMD ["sh", "-c", "x"]', 'ENTRYPOINT /init --flag', 'ENV A=1 B="two words"', 'ENV PATH /usr/bin', 'EXPOSE 80 53/udp', 'LABEL k=v', 'USER 1000:1000', 'WORKDIR /srv', 'VOLUME /data', 'STOPSIGNAL SIGINT']);
  t.deepEqual(c.Cmd, ['sh', '-c', 'x']);
  t.deepEqual(c.Entrypoint, ['/bin/sh', '-c', '/init --flag']);
  t.deepEqual(c.Env, ['PATH=/usr/bin', 'A=1', 'B=two words']);
  t.deepEqual(c.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  t.deepEqual(c.Labels, { k: 'v' });
  t.is(c.User, '1000:1000');
  t.is(c.WorkingDir, '/srv');
  t.deepEqual(c.Volumes, { '/data': {} });
  t.is(c.StopSignal, 'SIGINT');
  t.throws(() => applyChanges({}, ['RUN rm -rf /']), { message: /unsupported instruction/ });
  t.throws(() => applyChanges({}, ['EXPOSE http']), { message: /invalid port/ });
});

test('config parsing refuses what run would trip on', (t) => {
  const ok = parseImageConfig(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: null, Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: [] } })), 'x');
  t.deepEqual(ok.config, { Env: ['A=1'] });
  for (const [bad, message] of [
    ['[]', /not a JSON object/],
    ['{', /not valid JSON/],
    ['{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}', /invalid layer diff id/],
    ['{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Cmd":"sh"}}', /malformed config\.Cmd/],
    ['{"rootfs":{"type":"layers","diff_ids":[]},"config":{"User":7}}', /malformed config\.User/],
  ] as const) {
    t.throws(() => parseImageConfig(Buffer.from(bad), 'image x'), { message });
  }
});

test('sizes and ages as podman prints them', (t) => {
  t.is(humanSize(0), '0 B');
  t.is(humanSize(4_520_000), '4.52 MB');
  t.is(humanSize(2_139_648), '2.14 MB');
  t.is(humanSize(999), '999 B');
  t.is(humanSize(1_500), '1.5 kB');
  const now = Date.parse('2024-03-01T00:00:00Z');
  t.is(humanAge('2024-02-29T23:59:30Z', now), '30 seconds ago');
  t.is(humanAge('2024-02-29T23:00:00Z', now), 'About an hour ago');
  t.is(humanAge('2024-02-20T00:00:00Z', now), '10 days ago');
  t.is(humanAge('2024-01-10T00:00:00Z', now), '7 weeks ago');
  t.is(humanAge('2024-01-01T00:00:00Z', now), '2 months ago');
  t.is(humanAge('2021-01-01T00:00:00Z', now), '3 years ago');
});

test('reading an image file through layers honours whiteouts and opaque directories', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'nook-lf-'));
  const lower = join(base, 'lower');
  const upper = join(base, 'upper');
  for (const d of [`${lower}/etc`, `${lower}/opq`, `${upper}/etc`, `${upper}/opq/sub`, `${upper}/aufs`, `${lower}/aufs`]) mkdirSync(d, { recursive: true });
  writeFileSync(`${lower}/etc/passwd`, 'lower\n');
  writeFileSync(`${lower}/etc/group`, 'lower group\n');
  writeFileSync(`${lower}/opq/hidden`, 'x');
  writeFileSync(`${lower}/opq/sub-file`, 'x');
  writeFileSync(`${upper}/etc/passwd`, 'upper\n');
  writeFileSync(`${lower}/aufs/gone`, 'x');
  writeFileSync(`${upper}/aufs/.wh.gone`, '');
  const sys = new RecordingSyscalls();
  sys.lsetxattr(`${upper}/opq`, 'user.overlay.opaque', Buffer.from('y'));
  const dirs = [upper, lower];
  t.is(readImageFile(dirs, '/etc/passwd', sys), 'upper\n');
  t.is(readImageFile(dirs, '/etc/group', sys), 'lower group\n');
  t.is(readImageFile(dirs, '/opq/hidden', sys), null);
  t.is(readImageFile(dirs, '/aufs/gone', sys), null);
  t.is(readImageFile(dirs, '/etc/../etc/passwd', sys), null);
  t.is(readImageFile(dirs, '/nothing', sys), null);
});
