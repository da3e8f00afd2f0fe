import test from 'ava';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linuxSyscalls, SyscallError, type Syscalls } from '../../src/syscalls/syscalls.js';
import { RecordingSyscalls } from '../../src/syscalls/fake.js';
import { NookError } from '../../src/lib/errors.js';
import { describeRanges, parseIdMap, unpackLayer, type UnpackOptions } from '../../src/image/unpack.js';
import { readTar } from '../../src/image/tar-reader.js';
import { chunksOf, makeTar, type RawEntry } from './image-tarmaker.js';

const sandbox = mkdtempSync(join(tmpdir(), 'nook-unpack-'));
let counter = 0;

/** The kernel's rules for an unprivileged user: only 0/0 character devices may be made. */
async function rootlessSyscalls(): Promise<Syscalls> {
  const real = await linuxSyscalls();
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'mknod') {
        return (path: string, mode: number, major: number, minor: number) => {
          if ((mode & 0o170000) !== 0o010000 && (major !== 0 || minor !== 0)) throw new SyscallError('mknod', 1, 'EPERM');
          return real.mknod(path, mode, major, minor);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

async function unpack(entries: RawEntry[] | Buffer, options: Partial<UnpackOptions> = {}) {
  const base = join(sandbox, `case-${counter++}`);
  const root = join(base, 'layer');
  mkdirSync(root, { recursive: true });
  const tar = Buffer.isBuffer(entries) ? entries : makeTar(entries);
  const result = unpackLayer(chunksOf(tar), root, { what: 'layer sha256:test', syscalls: await rootlessSyscalls(), chown: false, ...options });
  return { base, root, result };
}

/** Expects a one-line NookError and that nothing appeared next to the layer directory. */
async function refused(t: import('ava').ExecutionContext, entries: RawEntry[] | Buffer, message: RegExp): Promise<void> {
  const { base, result } = await unpack(entries);
  const error = await t.throwsAsync(result, { instanceOf: NookError, message });
  t.false(error?.message.includes('\n') ?? true, 'one line');
  t.true((error?.message.length ?? 0) < 400, 'short');
  t.deepEqual(readdirSync(base), ['layer'], 'nothing written outside the layer directory');
}

test('a normal layer: files, modes, times, links, fifo, xattrs', async (t) => {
  const { root, result } = await unpack([
    { path: './', type: 'dir', mode: 0o755 },
    { path: 'bin/', type: 'dir' },
    { path: 'bin/busybox', data: 'ELF...', mode: 0o4755, mtime: 1600000000, pax: { 'SCHILY.xattr.user.note': 'hello' } },
    { path: 'bin/sh', type: 'symlink', linkpath: '/bin/busybox' },
    { path: 'bin/ls', type: 'hardlink', linkpath: 'bin/busybox' },
    { path: 'etc/ro/', type: 'dir', mode: 0o555 },
    { path: 'etc/ro/file', data: 'x' },
    { path: 'run/fifo', type: 'fifo', mode: 0o600 },
    { path: 'implicit/parent/file', data: 'deep' },
    { path: 'bin/busybox', data: 'ELF2', mode: 0o755 },
  ]);
  const r = await result;
  t.is(r.entries, 10);
  t.is(readFileSync(join(root, 'bin/busybox'), 'utf8'), 'ELF2');
  t.is(readlinkSync(join(root, 'bin/sh')), '/bin/busybox');
  t.is(lstatSync(join(root, 'etc/ro')).mode & 0o7777, 0o555);
  t.true(lstatSync(join(root, 'run/fifo')).isFIFO());
  t.is(readFileSync(join(root, 'implicit/parent/file'), 'utf8'), 'deep');
  t.is(r.whiteoutFormat, 'overlay');
});

test('setuid bits, mtime and hardlinks are kept', async (t) => {
  const { root, result } = await unpack([
    { path: 'su', data: 'x', mode: 0o4755, mtime: 1600000000 },
    { path: 'su2', type: 'hardlink', linkpath: './su' },
  ]);
  await result;
  const st = lstatSync(join(root, 'su'));
  t.is(st.mode & 0o7777, 0o4755);
  t.is(Math.floor(st.mtimeMs / 1000), 1600000000);
  t.is(st.nlink, 2);
  t.is(lstatSync(join(root, 'su2')).ino, st.ino);
});

test('whiteouts become 0/0 character devices, opaque dirs get user.overlay.opaque', async (t) => {
  const { root, result } = await unpack([
    { path: 'etc/', type: 'dir' },
    { path: 'etc/.wh.gone', data: '' },
    { path: 'opq/.wh..wh..opq', data: '' },
    { path: 'opq/new', data: 'n' },
    { path: '.wh..wh.plnk', type: 'dir' },
  ]);
  const r = await result;
  const st = lstatSync(join(root, 'etc/gone'));
  t.true(st.isCharacterDevice());
  t.is(st.rdev, 0);
  t.false(existsSync(join(root, 'etc/.wh.gone')));
  const sys = await linuxSyscalls();
  t.is(sys.lgetxattr(join(root, 'opq'), 'user.overlay.opaque')?.toString(), 'y');
  t.false(existsSync(join(root, '.wh..wh.plnk')));
  t.is(r.whiteouts, 1);
  t.is(r.opaqueDirs, 1);
});

test('whiteouts fall back to .wh. files when the filesystem refuses them', async (t) => {
  const fake = new RecordingSyscalls();
  fake.failNext('mknod', 'EPERM');
  fake.failNext('lsetxattr', 'EOPNOTSUPP');
  const { root, result } = await unpack([{ path: '.wh.gone', data: '' }, { path: 'd/.wh..wh..opq', data: '' }], { syscalls: fake });
  const r = await result;
  t.is(r.whiteoutFormat, 'aufs');
  t.true(existsSync(join(root, '.wh.gone')));
  t.true(existsSync(join(root, 'd/.wh..wh..opq')));
  t.regex(r.notes.join('\n'), /only fuse-overlayfs/);
});

test('device nodes are skipped with a note', async (t) => {
  const { root, result } = await unpack([
    { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
    { path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 },
    { path: 'dev/wh', type: 'char', devmajor: 0, devminor: 0 },
  ]);
  const r = await result;
  t.false(existsSync(join(root, 'dev/null')));
  t.true(lstatSync(join(root, 'dev/wh')).isCharacterDevice());
  t.regex(r.notes.join('\n'), /skipped 2 device nodes \(dev\/null \(char 1:3\), dev\/sda \(block 8:0\)\)/);
});

test('overlay metadata xattrs from the layer are refused', async (t) => {
  const { root, result } = await unpack([{ path: 'd/', type: 'dir', pax: { 'SCHILY.xattr.user.overlay.opaque': 'y', 'SCHILY.xattr.user.fuseoverlayfs.override_stat': '0:0:04755' } }]);
  const r = await result;
  const sys = await linuxSyscalls();
  t.is(sys.lgetxattr(join(root, 'd'), 'user.overlay.opaque'), null);
  t.regex(r.notes.join('\n'), /did not set extended attributes user.fuseoverlayfs.override_stat, user.overlay.opaque/);
});

test('hostile: ".." components', (t) => refused(t, [{ path: '../x', data: 'evil' }], /refusing path "\.\.\/x": it has a "\.\." component/));
test('hostile: ".." in the middle', (t) => refused(t, [{ path: 'a/../../x', data: 'evil' }], /"\.\." component/));
test('hostile: absolute path', (t) => refused(t, [{ path: '/abs', data: 'evil' }], /refusing path "\/abs": it is absolute/));
test('hostile: a symlink, then a file written through it', async (t) => {
  const outside = join(sandbox, `outside-${counter}`);
  await refused(t, [{ path: 'evil', type: 'symlink', linkpath: outside }, { path: 'evil/file', data: 'evil' }], /refusing "evil\/file": it would be written through the symlink "evil"/);
  t.false(existsSync(outside));
});
test('hostile: a relative symlink out, then a file through it', (t) =>
  refused(t, [{ path: 'up', type: 'symlink', linkpath: '../..' }, { path: 'up/x', data: 'evil' }], /written through the symlink "up"/));
test('hostile: a symlink chain', (t) =>
  refused(
    t,
    [
      { path: 'a', type: 'symlink', linkpath: 'b' },
      { path: 'b', type: 'symlink', linkpath: '/tmp' },
      { path: 'a/x', data: 'evil' },
    ],
    /written through the symlink "a"/,
  ));
test('hostile: a directory replaced by a symlink, then written through', (t) =>
  refused(
    t,
    [
      { path: 'd/', type: 'dir' },
      { path: 'd', type: 'symlink', linkpath: '/tmp' },
      { path: 'd/x', data: 'evil' },
    ],
    /written through the symlink "d"/,
  ));
test('hostile: hardlink to an absolute path', (t) => refused(t, [{ path: 'passwd', type: 'hardlink', linkpath: '/etc/passwd' }], /refusing hardlink "passwd": its target "\/etc\/passwd" is absolute/));
test('hostile: hardlink with ..', (t) => refused(t, [{ path: 'passwd', type: 'hardlink', linkpath: '../../../etc/passwd' }], /"\.\." component/));
test('hostile: hardlink through a symlink', (t) =>
  refused(
    t,
    [
      { path: 'etc', type: 'symlink', linkpath: '/etc' },
      { path: 'passwd', type: 'hardlink', linkpath: 'etc/passwd' },
    ],
    /goes through a symlink/,
  ));
test('hostile: hardlink to something not in the layer', (t) => refused(t, [{ path: 'x', type: 'hardlink', linkpath: 'nothing' }], /is not in this layer/));
test('hostile: a 10k-character name', (t) => refused(t, [{ path: 'a/'.repeat(5000) + 'x', data: 'x' }], /longer than 4095 bytes/));
test('hostile: a 300-byte name component', (t) => refused(t, [{ path: 'x'.repeat(300), data: 'x' }], /longer than 255 bytes/));
test('hostile: a size header larger than the data', (t) => refused(t, makeTar([{ path: 'big', data: 'short', size: 1 << 20 }], { end: false }), /truncated tar archive \("big" declares 1048576 bytes, only 5(12)? present\)/));
test('hostile: a bad header checksum', (t) => refused(t, [{ path: 'ok', data: 'x' }, { path: 'bad', data: 'x', badChecksum: true }], /bad header checksum/));
test('hostile: not a tar at all', (t) => refused(t, Buffer.from('PK\x03\x04 this is a zip file'.padEnd(600, 'x')), /not a tar archive/));
test('hostile: sparse entries', (t) => refused(t, [{ path: 's', type: 'S', data: '' }], /unsupported tar entry \(a GNU sparse file\)/));
test('hostile: an absurd base-256 size', async (t) => {
  const tar = makeTar([{ path: 'x', data: 'x' }]);
  tar.fill(0, 124, 136);
  tar[124] = 0x80;
  tar.fill(0xff, 125, 136);
  let sum = 0;
  tar.write('        ', 148, 'latin1');
  for (let i = 0; i < 512; i++) sum += tar[i]!;
  tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  await refused(t, tar, /absurd size/);
});

test('owners outside the mapping are refused with the file, the id and the range', async (t) => {
  const { result } = await unpack([{ path: 'etc/shadow', data: 'x', uid: 70000 }], {
    chown: true,
    uidRanges: [{ inside: 0, count: 65537 }],
    gidRanges: [{ inside: 0, count: 65537 }],
    unmappedHint: 'add subordinate ids',
  });
  await t.throwsAsync(result, { message: 'layer sha256:test: "etc/shadow" is owned by uid 70000, outside the uids available in nook\'s user namespace (0-65536); add subordinate ids' });
});

test('id maps parse and describe', (t) => {
  const ranges = parseIdMap('         0       1001          1\n         1     100000      65536\n');
  t.deepEqual(ranges, [{ inside: 0, count: 1 }, { inside: 1, count: 65536 }]);
  t.is(describeRanges(ranges), '0-65536');
  t.is(describeRanges([{ inside: 0, count: 1 }, { inside: 1000, count: 10 }]), '0, 1000-1009');
});

test('tar reader: GNU long names, pax paths, trailing data is consumed', async (t) => {
  const long = `${'d'.repeat(150)}/${'f'.repeat(120)}`;
  const tar = Buffer.concat([makeTar([{ path: long, data: 'x' }, { path: 'l', type: 'symlink', linkpath: 'y'.repeat(200) }]), Buffer.alloc(4096)]);
  const seen: string[] = [];
  for await (const { entry } of readTar(chunksOf(tar, 100))) seen.push(`${entry.type}:${entry.path}:${entry.linkpath.length}`);
  t.deepEqual(seen, [`file:${long}:0`, 'symlink:l:200']);
});

test('tar reader: a file read already comes as data, one still arriving as a body, the same bytes either way', async (t) => {
  const entries: RawEntry[] = [
    { path: 'small', data: 'abc' },
    { path: 'empty', data: '' },
    { path: 'bigger', data: 'x'.repeat(5000) },
    { path: 'odd', data: 'y'.repeat(511) },
  ];
  const tar = makeTar(entries);
  for (const size of [tar.length, 700, 7]) {
    const seen: string[] = [];
    const ways = new Set<string>();
    for await (const { entry, body, data } of readTar(chunksOf(tar, size))) {
      const chunks: Buffer[] = [];
      if (data) for (const chunk of data) chunks.push(chunk);
      else for await (const chunk of body) chunks.push(chunk);
      ways.add(data ? 'data' : 'body');
      seen.push(`${entry.path}:${Buffer.concat(chunks).toString()}`);
    }
    t.deepEqual(seen, entries.map((e) => `${e.path}:${String(e.data)}`), `chunks of ${size}`);
    // one chunk: every file is buffered already; 7-byte chunks: none of the non-empty ones is
    if (size === tar.length) t.deepEqual([...ways], ['data']);
    if (size === 7) t.true(ways.has('body'));
  }
});

test('tar reader: numeric fields with spaces, NULs or nothing, as tars write them', async (t) => {
  const tar = makeTar([{ path: 'f', data: 'x', uid: 1234, mtime: 1600000000 }]);
  const variants: [string, number][] = [
    ['0002322\0', 1234], // the usual
    ['   2322 ', 1234], // space-padded
    ['2322\0\0\0\0', 1234],
    ['\0\0\0\0\0\0\0\0', 0], // empty
    ['\t2322  \0', 1234], // whitespace other than spaces, as before
  ];
  for (const [field, uid] of variants) {
    const copy = Buffer.from(tar);
    copy.write(field, 108, 8, 'latin1');
    copy.write('        ', 148, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += copy[i]!;
    copy.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const seen: number[] = [];
    for await (const { entry } of readTar(chunksOf(copy))) seen.push(entry.uid);
    t.deepEqual(seen, [uid], JSON.stringify(field));
  }
  const bad = Buffer.from(tar);
  bad.write('12x4\0\0\0\0', 108, 8, 'latin1');
  bad.write('        ', 148, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += bad[i]!;
  bad.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  await t.throwsAsync(async () => {
    for await (const _ of readTar(chunksOf(bad))) void _;
  }, { message: /malformed uid field "12x4"/ });
});
