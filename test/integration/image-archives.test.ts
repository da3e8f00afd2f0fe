/**
 * More archive shapes (gzip'd docker save output, multi-platform OCI layouts,
 * several images in one archive, standard input/output) and the store's
 * lease rules against garbage collection, with real extraction.
 */
import test from 'ava';
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { busyboxDockerArchive, busyboxRootfsTar, fixtureIndex, layeredOciLayout, multiArchOciLayout } from '../helpers/fixtures.js';
import { describe, runNook, spawnNook } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';
import { ImageStore } from '../../src/image/store.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { makeTar, sha256 } from '../unit/image-tarmaker.js';

function target(s: TempStore) {
  return { root: s.root, runroot: s.runroot, env: s.env };
}

function paths(s: TempStore) {
  return resolvePaths({ root: s.root, runroot: s.runroot });
}

test('a gzip-compressed docker save output loads', async (t) => {
  const s = await tempStore(t);
  const file = join(s.dir, 'busybox.tar.gz');
  writeFileSync(file, gzipSync(readFileSync(busyboxDockerArchive())));
  const r = await runNook(['load', '-q', '-i', file], target(s));
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout, 'Loaded image: localhost/busybox:latest');
});

test('a multi-platform OCI layout loads the host platform', async (t) => {
  const s = await tempStore(t);
  const r = await runNook(['load', '-q', '-i', multiArchOciLayout()], target(s));
  t.is(r.exitCode, 0, describe(r));
  const host = fixtureIndex().multiArch.manifests.find((m) => m.platform.architecture === fixtureIndex().busybox.platform.architecture)!;
  t.is((await runNook(['images', '-q', '--no-trunc'], target(s))).stdout, host.configDigest);
});

test('several images in one archive, through standard output and standard input', async (t) => {
  const s = await tempStore(t);
  for (const source of [busyboxDockerArchive(), layeredOciLayout()]) t.is((await runNook(['load', '-q', '-i', source], target(s))).exitCode, 0);
  const ids = (await runNook(['images', '-q', '--no-trunc'], target(s))).stdout.split('\n').sort();
  t.is((await runNook(['tag', fixtureIndex().layered.configDigest.slice(7, 19), 'second:1'], target(s))).exitCode, 0);
  const file = join(s.dir, 'both.tar');
  // `nook save busybox second:1 > both.tar`
  const saved = await execa('sh', ['-c', `"${process.execPath}" "$0" --root "$1" --runroot "$2" save busybox second:1 > "$3"`, join(import.meta.dirname, '../../src/cli/main.cjs'), s.root, s.runroot, file], { env: s.env, reject: false });
  t.is(saved.exitCode, 0, saved.stderr);
  const other = await tempStore(t);
  const child = spawnNook(['load'], target(other));
  child.stdin!.end(readFileSync(file));
  const loaded = await child;
  t.is(loaded.exitCode, 0, String(loaded.stderr));
  t.regex(String(loaded.stdout), /Loaded image: localhost\/busybox:latest/);
  t.regex(String(loaded.stdout), /Loaded image: localhost\/second:1/);
  t.deepEqual((await runNook(['images', '-q', '--no-trunc'], target(other))).stdout.split('\n').sort(), ids);
});

test('oci-dir output is a layout directory nook loads back', async (t) => {
  const s = await tempStore(t);
  await runNook(['load', '-q', '-i', layeredOciLayout()], target(s));
  const id = (await runNook(['images', '-q', '--no-trunc'], target(s))).stdout;
  const dir = join(s.dir, 'layout');
  const r = await runNook(['save', '-q', '--format', 'oci-dir', '-o', dir, id.slice(7)], target(s));
  t.is(r.exitCode, 0, describe(r));
  t.true(existsSync(join(dir, 'oci-layout')));
  const other = await tempStore(t);
  t.is((await runNook(['load', '-q', '-i', dir], target(other))).exitCode, 0);
  t.is((await runNook(['images', '-q', '--no-trunc'], target(other))).stdout, id);
});

test('what a live lease pins survives garbage collection; a dead lease is cleaned up', async (t) => {
  const s = await tempStore(t);
  const store = new ImageStore(paths(s));
  const layer = makeTar([{ path: 'hello', data: 'hi\n' }]);
  const layerFile = join(s.dir, 'layer.tar');
  writeFileSync(layerFile, layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));

  const id = await store.withLease(async (lease) => {
    const blob = await lease.ingestFile(layerFile);
    await lease.unpackLayers([{ blob: blob.digest, diffId: blob.digest, compression: 'none' }]);
    // another nook process collects garbage now: the uncommitted blob and layer are pinned
    const other = new ImageStore(paths(s));
    await other.garbageCollect();
    t.true(existsSync(other.blobPath(blob.digest)));
    t.true(existsSync(other.layerDiffDir(blob.digest)));
    const record = await lease.commitImage({ config, layers: [{ diffId: blob.digest, blob: blob.digest, blobSize: blob.size, compression: 'none' }], names: ['localhost/leased:1'], source: 'test' });
    return record.id;
  });
  t.is((await store.findImage('leased:1'))?.record.id, id);

  // a lease left by a process that died: its lock is free
  const storage = join(s.root, 'storage');
  writeFileSync(join(storage, 'leases', '999999-dead.json'), JSON.stringify({ pid: 999999, started: '', blobs: ['0'.repeat(64)], layers: [], images: [] }));
  writeFileSync(join(storage, 'leases', '999999-dead.lock'), '');
  mkdirSync(join(storage, 'tmp', '999999-dead', 'x'), { recursive: true });
  await store.garbageCollect();
  t.false(existsSync(join(storage, 'leases', '999999-dead.json')));
  t.false(existsSync(join(storage, 'tmp', '999999-dead')));
  t.true(existsSync(store.layerDiffDir(sha256(layer) as `sha256:${string}`)), 'committed content stays');
});

test('an uncommitted lease leaves nothing behind', async (t) => {
  const s = await tempStore(t);
  const store = new ImageStore(paths(s));
  await t.throwsAsync(
    store.withLease(async (lease) => {
      const blob = await lease.ingestFile(busyboxRootfsTar());
      await lease.unpackLayers([{ blob: blob.digest, diffId: blob.digest, compression: 'none' }]);
      throw new Error('the pull failed after the layer');
    }),
    { message: 'the pull failed after the layer' },
  );
  const storage = join(s.root, 'storage');
  for (const sub of ['layers', 'blobs/sha256', 'tmp', 'leases', 'images']) t.deepEqual(existsSync(join(storage, sub)) ? (await import('node:fs')).readdirSync(join(storage, sub)) : [], [], sub);
});

test('ingestBlob verifies digest and size, and fetches only what is missing', async (t) => {
  const s = await tempStore(t);
  const store = new ImageStore(paths(s));
  const { Readable } = await import('node:stream');
  const data = Buffer.from('a blob\n');
  const digest = sha256(data) as `sha256:${string}`;
  await store.withLease(async (lease) => {
    await t.throwsAsync(lease.ingestBlob(digest, { open: () => Readable.from([Buffer.from('tampered')]), what: 'blob x' }), { message: /blob x: expected|blob x: content does not match its digest/ });
    await t.throwsAsync(lease.ingestBlob(digest, { open: () => Readable.from([data]), size: 3, what: 'blob x' }), { message: 'blob x: expected 3 bytes, got 7' });
    t.false(existsSync(store.blobPath(digest)));
    const first = await lease.ingestBlob(digest, { open: () => Readable.from([data]) });
    t.false(first.reused);
    let opened = false;
    const second = await lease.ingestBlob(digest, { open: () => ((opened = true), Readable.from([data])) });
    t.true(second.reused);
    t.false(opened);
  });
  t.false(existsSync(store.blobPath(digest)), 'not used by an image: removed when the lease ends');
});

test('old docker save archives: a repeated layer stored as a symlink to the first', async (t) => {
  const s = await tempStore(t);
  const layer = makeTar([{ path: 'hello', data: 'hi\n' }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(layer), sha256(layer)] } }));
  const configName = `${sha256(config).slice(7)}.json`;
  const archive = makeTar([
    { path: 'aaa/', type: 'dir' },
    { path: 'aaa/layer.tar', data: layer },
    { path: 'bbb/', type: 'dir' },
    { path: 'bbb/layer.tar', type: 'symlink', linkpath: '../aaa/layer.tar' },
    { path: configName, data: config },
    { path: 'manifest.json', data: JSON.stringify([{ Config: configName, RepoTags: ['repeat:1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]) },
    { path: 'repositories', data: JSON.stringify({ repeat: { '1': 'bbb' } }) },
  ]);
  const file = join(s.dir, 'old.tar');
  writeFileSync(file, archive);
  const r = await runNook(['load', '-q', '-i', file], target(s));
  t.is(r.exitCode, 0, describe(r));
  t.is(r.stdout, 'Loaded image: docker.io/library/repeat:1');
  const image = await new ImageStore(paths(s)).imageForRun('repeat:1');
  t.is(image.layerDirs.length, 2);
  t.is(readFileSync(join(image.layerDirs[0]!, 'hello'), 'utf8'), 'hi\n');
});
