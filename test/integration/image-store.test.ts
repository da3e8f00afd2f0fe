/**
 * The image store for real: layers extracted in a user namespace through
 * newuidmap, archives in and out, hostile input, concurrency. Runs as an
 * unprivileged user with subordinate ids (the harness's nooktest).
 */
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { computeIdMapping, hostIdFor } from '../../src/idmap/mapping.js';
import { busyboxDockerArchive, busyboxRootfsTar, fixtureIndex, layeredFacts, layeredOciLayout, rootfsFacts } from '../helpers/fixtures.js';
import { requireHostTool } from '../helpers/host-tools.js';
import { describe, runNook, spawnNook } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';
import { ImageStore } from '../../src/image/store.js';
import { RmiExit } from '../../src/image/store.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { makeTar, sha256, type RawEntry } from '../unit/image-tarmaker.js';

async function store(t: ExecutionContext): Promise<TempStore> {
  return tempStore(t);
}

async function nook(s: TempStore, args: string[], input?: string) {
  return runNook(args, { root: s.root, runroot: s.runroot, env: s.env, ...(input !== undefined ? { input } : {}) });
}

async function ok(t: ExecutionContext, s: TempStore, args: string[]) {
  const r = await nook(s, args);
  t.is(r.exitCode, 0, describe(r));
  return r;
}

function storage(s: TempStore, sub: string): string[] {
  const dir = join(s.root, 'storage', sub);
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Store content that must not change when an operation is refused. */
function snapshot(s: TempStore) {
  return {
    layers: storage(s, 'layers').sort(),
    images: storage(s, 'images').sort(),
    blobs: existsSync(join(s.root, 'storage', 'blobs', 'sha256')) ? readdirSync(join(s.root, 'storage', 'blobs', 'sha256')).sort() : [],
    tmp: storage(s, 'tmp'),
    leases: storage(s, 'leases'),
    repositories: existsSync(join(s.root, 'storage', 'repositories.json')) ? readFileSync(join(s.root, 'storage', 'repositories.json'), 'utf8') : '',
  };
}

function layerDir(s: TempStore, diffId: string): string {
  return join(s.root, 'storage', 'layers', diffId.replace('sha256:', ''), 'diff');
}

test('load a docker-archive: names, id, ownership through the id mapping, setuid bits', async (t) => {
  const s = await store(t);
  const r = await ok(t, s, ['load', '-q', '-i', busyboxDockerArchive()]);
  t.is(r.stdout, 'Loaded image: localhost/busybox:latest');
  const facts = fixtureIndex().dockerArchive;
  const inspect = JSON.parse((await ok(t, s, ['image', 'inspect', 'busybox'])).stdout) as { Id: string; RepoTags: string[]; RootFS: { Layers: string[] }; Config: { Cmd?: string[] } }[];
  t.is(`sha256:${inspect[0]!.Id}`, facts.configDigest);
  t.deepEqual(inspect[0]!.RepoTags, ['localhost/busybox:latest']);
  t.deepEqual(inspect[0]!.RootFS.Layers, facts.diffIds);

  const mapping = await computeIdMapping();
  const dir = layerDir(s, facts.diffIds[0]!);
  const owned = lstatSync(join(dir, rootfsFacts.ownedFile.path));
  t.is(owned.uid, hostIdFor(mapping.uidMap, rootfsFacts.ownedFile.uid)!);
  t.is(owned.gid, hostIdFor(mapping.gidMap, rootfsFacts.ownedFile.gid)!);
  t.is(lstatSync(join(dir, 'bin/busybox')).uid, process.getuid!(), 'root in the image is the user on the host');
  const hard = lstatSync(join(dir, rootfsFacts.hardlink));
  t.is(hard.ino, owned.ino, 'hard links stay hard links');
  t.is(lstatSync(join(dir, rootfsFacts.setuidFile.path)).mode & 0o7777, rootfsFacts.setuidFile.mode);
  t.is(lstatSync(join(dir, 'tmp')).mode & 0o7777, rootfsFacts.tmpMode);
  const { readlinkSync } = await import('node:fs');
  t.is(readlinkSync(join(dir, rootfsFacts.absoluteSymlink.path)), rootfsFacts.absoluteSymlink.target);
});

test('save -> load round trips keep the image id, in both archive formats; outputs are valid OCI layouts', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', layeredOciLayout()]);
  const id = (await ok(t, s, ['images', '-q', '--no-trunc'])).stdout.trim();
  await ok(t, s, ['tag', id, 'layered:v1']);
  for (const format of ['oci-archive', 'docker-archive']) {
    const file = join(s.dir, `${format}.tar`);
    await ok(t, s, ['save', '-q', '--format', format, '-o', file, 'layered:v1']);
    // validates as an OCI image layout: every descriptor's digest and size match the blob
    const unpacked = join(s.dir, `${format}-x`);
    mkdirSync(unpacked);
    await execa('tar', ['-xf', file, '-C', unpacked]);
    t.deepEqual(JSON.parse(readFileSync(join(unpacked, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(readFileSync(join(unpacked, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations: Record<string, string> }[] };
    t.is(index.manifests[0]!.annotations['org.opencontainers.image.ref.name'], 'localhost/layered:v1');
    const blob = (digest: string, size: number) => {
      const bytes = readFileSync(join(unpacked, 'blobs', 'sha256', digest.slice(7)));
      t.is(sha256(bytes), digest);
      t.is(bytes.length, size);
      return bytes;
    };
    const manifest = JSON.parse(blob(index.manifests[0]!.digest, index.manifests[0]!.size).toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number; mediaType: string }[] };
    t.is(manifest.config.digest, id);
    blob(manifest.config.digest, manifest.config.size);
    for (const layer of manifest.layers) blob(layer.digest, layer.size);
    const skopeo = await execa(requireHostTool('skopeo'), ['inspect', `oci-archive:${file}`], { reject: false });
    t.is(skopeo.exitCode, 0, skopeo.stderr);
    if (format === 'docker-archive') {
      t.true(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar'), 'docker-archive layers are plain tars');
      const docker = JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8')) as { RepoTags: string[] }[];
      t.deepEqual(docker[0]!.RepoTags, ['localhost/layered:v1']);
      const viaSkopeo = await execa(requireHostTool('skopeo'), ['inspect', `docker-archive:${file}`], { reject: false });
      t.is(viaSkopeo.exitCode, 0, viaSkopeo.stderr);
    }
    const other = await tempStore(t);
    const loaded = await nook(other, ['load', '-q', '-i', file]);
    t.is(loaded.exitCode, 0, describe(loaded));
    t.is(loaded.stdout, 'Loaded image: localhost/layered:v1');
    t.is((await nook(other, ['images', '-q', '--no-trunc'])).stdout.trim(), id, `${format}: same image id after the round trip`);
  }
});

test('whiteouts and opaque directories hide lower files with the kernel overlay and with fuse-overlayfs', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', layeredOciLayout()]);
  const facts = fixtureIndex().layered;
  const lower = facts.diffIds.map((d) => layerDir(s, d)).reverse().join(':');
  const work = join(s.dir, 'ov');
  mkdirSync(work);
  const script = `
    set -e
    cd ${work}
    for driver in overlay fuse; do
      rm -rf up wk m; mkdir up wk m
      if [ $driver = overlay ]; then mount -t overlay overlay -o lowerdir=${lower},upperdir=up,workdir=wk,userxattr m
      else fuse-overlayfs -o lowerdir=${lower},upperdir=up,workdir=wk m; fi
      echo "$driver removed=$(test -e m${layeredFacts.removed} && echo present || echo gone) opaque=$(ls m${layeredFacts.opaqueDir} | tr '\\n' ' ')changed=$(cat m${layeredFacts.changed.path})"
      if [ $driver = overlay ]; then umount m; else fusermount3 -u m; fi
    done`;
  requireHostTool('fuse-overlayfs');
  const r = await execa(requireHostTool('unshare'), ['--map-root-user', '--map-auto', '--mount', 'sh', '-c', script], { reject: false });
  t.is(r.exitCode, 0, r.stderr);
  const want = `removed=gone opaque=${layeredFacts.opaqueKept.path.split('/').pop()} changed=${layeredFacts.changed.content.trim()}`;
  t.deepEqual(r.stdout.trim().split('\n'), [`overlay ${want}`, `fuse ${want}`]);
});

interface Hostile {
  name: string;
  tar: () => Buffer;
  error: RegExp;
}

function hostileCases(outside: string): Hostile[] {
  const t = (entries: RawEntry[]) => () => makeTar(entries);
  return [
    { name: '../ path', tar: t([{ path: '../escape', data: 'x' }]), error: /refusing path "\.\.\/escape": it has a "\.\." component/ },
    { name: 'absolute path', tar: t([{ path: `${outside}/abs`, data: 'x' }]), error: /it is absolute/ },
    { name: 'symlink then write through it', tar: t([{ path: 'evil', type: 'symlink', linkpath: outside }, { path: 'evil/file', data: 'x' }]), error: /written through the symlink "evil"/ },
    { name: 'hardlink to /etc/passwd', tar: t([{ path: 'passwd', type: 'hardlink', linkpath: '/etc/passwd' }]), error: /its target "\/etc\/passwd" is absolute/ },
    { name: 'symlink chain', tar: t([{ path: 'a', type: 'symlink', linkpath: 'b' }, { path: 'b', type: 'symlink', linkpath: outside }, { path: 'a/x', data: 'x' }]), error: /written through the symlink "a"/ },
    { name: '10k name', tar: t([{ path: `${'d/'.repeat(5000)}f`, data: 'x' }]), error: /longer than 4095 bytes/ },
    { name: 'size beyond the data', tar: () => makeTar([{ path: 'big', data: 'short', size: 10_000_000 }], { end: false }), error: /truncated tar archive/ },
    { name: 'gzip garbage', tar: () => Buffer.concat([gzipSync(makeTar([{ path: 'a', data: 'x' }])).subarray(0, 30), Buffer.from('garbage')]), error: /gzip|truncated|unexpected end/i },
  ];
}

test('hostile tarballs: one-line error, exit 125, nothing outside, the store unchanged', async (t) => {
  const s = await store(t);
  await ok(t, s, ['import', '-q', busyboxRootfsTar(), 'base']);
  const before = snapshot(s);
  const outside = join(s.dir, 'outside');
  mkdirSync(outside);
  for (const c of hostileCases(outside)) {
    const file = join(s.dir, `hostile-${c.name.replace(/\W+/g, '-')}.tar`);
    writeFileSync(file, c.tar());
    const r = await nook(s, ['import', '-q', file, 'hostile']);
    t.is(r.exitCode, 125, `${c.name}: ${describe(r)}`);
    t.regex(r.stderr, c.error, c.name);
    t.is(r.stderr.split('\n').length, 1, `${c.name}: one line: ${r.stderr}`);
    t.true(r.stderr.length < 400, `${c.name}: short`);
    t.deepEqual(readdirSync(outside), [], `${c.name}: nothing written outside`);
    t.deepEqual(snapshot(s), before, `${c.name}: store unchanged`);
  }
  t.false(existsSync(join(s.dir, '..', 'escape')));
});

test('device nodes are skipped rootless, the image still loads', async (t) => {
  const s = await store(t);
  const file = join(s.dir, 'dev.tar');
  writeFileSync(file, makeTar([{ path: 'dev/', type: 'dir' }, { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 }, { path: 'etc/hostname', data: 'x\n' }]));
  const r = await ok(t, s, ['import', '-q', file, 'devs']);
  const id = r.stdout.trim();
  const view = await new ImageStore(resolvePaths({ root: s.root, runroot: s.runroot })).resolveImage(id);
  const dir = layerDir(s, view.record.layers[0]!.diffId);
  t.false(existsSync(join(dir, 'dev/null')));
  t.true(existsSync(join(dir, 'etc/hostname')));
  const record = JSON.parse(readFileSync(join(dir, '..', 'layer.json'), 'utf8')) as { notes: string[] };
  t.regex(record.notes.join('\n'), /skipped 1 device node \(dev\/null \(char 1:3\)\)/);
});

test('bad archives for load: malformed manifest, wrong digest, hostile member, diff id mismatch', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', busyboxDockerArchive()]);
  const before = snapshot(s);
  const layer = makeTar([{ path: 'hello', data: 'hi\n' }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const archive = (members: RawEntry[]) => makeTar(members);
  const cases: { name: string; tar: Buffer; error: RegExp }[] = [
    { name: 'not an archive', tar: Buffer.from('hello'.repeat(200)), error: /not a tar archive/ },
    { name: 'no manifest', tar: archive([{ path: 'x', data: 'y' }]), error: /neither manifest\.json \(docker-archive\) nor index\.json/ },
    { name: 'malformed manifest', tar: archive([{ path: 'manifest.json', data: '{"not":"a list"}' }]), error: /manifest\.json of .* is malformed/ },
    { name: 'manifest not json', tar: archive([{ path: 'manifest.json', data: '[{' }]), error: /manifest\.json of .* is not valid JSON/ },
    {
      name: 'member outside the archive',
      tar: archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['../../../etc/passwd'] }]) }, { path: 'c.json', data: config }]),
      error: /refusing member "\.\.\/\.\.\/\.\.\/etc\/passwd": it has a "\.\." component/,
    },
    {
      name: 'config digest mismatch',
      tar: archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: `${'0'.repeat(64)}.json`, RepoTags: ['x:1'], Layers: ['l.tar'] }]) }, { path: `${'0'.repeat(64)}.json`, data: config }, { path: 'l.tar', data: layer }]),
      error: /does not match its digest/,
    },
    {
      name: 'layer is not what the config says',
      tar: archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar'] }]) }, { path: 'c.json', data: config }, { path: 'l.tar', data: makeTar([{ path: 'other', data: 'x' }]) }]),
      error: /its content has digest sha256:[0-9a-f]{64}, but the image config says/,
    },
    {
      name: 'gzip layer whose content is not what the config says',
      tar: archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar.gz'] }]) }, { path: 'c.json', data: config }, { path: 'l.tar.gz', data: gzipSync(makeTar([{ path: 'other', data: 'x' }])) }]),
      error: /uncompressed content has digest .* but the image config says/,
    },
    {
      name: 'hostile layer inside a good archive',
      tar: (() => {
        const evil = makeTar([{ path: 'evil', type: 'symlink', linkpath: '/tmp' }, { path: 'evil/x', data: 'x' }]);
        const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(evil)] } }));
        return archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar'] }]) }, { path: 'c.json', data: cfg }, { path: 'l.tar', data: evil }]);
      })(),
      error: /layer 1 of image 1 of .*: refusing "evil\/x": it would be written through the symlink "evil"/,
    },
    {
      name: 'config without rootfs',
      tar: archive([{ path: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: [] }]) }, { path: 'c.json', data: '{"architecture":"amd64"}' }]),
      error: /has no rootfs\.diff_ids/,
    },
  ];
  for (const c of cases) {
    const file = join(s.dir, `bad-${c.name.replace(/\W+/g, '-')}.tar`);
    writeFileSync(file, c.tar);
    const r = await nook(s, ['load', '-q', '-i', file]);
    t.is(r.exitCode, 125, `${c.name}: ${describe(r)}`);
    t.regex(r.stderr, c.error, c.name);
    t.is(r.stderr.split('\n').length, 1, `${c.name}: one line: ${r.stderr}`);
    t.deepEqual(snapshot(s), before, `${c.name}: store unchanged`);
  }
});

test('an owner outside the mapping is refused with the file, the id and the range; --ignore-chown-errors gives it to root', async (t) => {
  const s = await store(t);
  const mapping = await computeIdMapping();
  const file = join(s.dir, 'unmapped.tar');
  const id = mapping.uidCount + 5000;
  writeFileSync(file, makeTar([{ path: 'etc/', type: 'dir' }, { path: 'etc/secret', data: 'x', uid: id, gid: 0 }]));
  const before = snapshot(s);
  const r = await nook(s, ['import', '-q', file, 'unmapped']);
  t.is(r.exitCode, 125, describe(r));
  t.regex(r.stderr, new RegExp(`"etc/secret" is owned by uid ${id}, outside the uids available in nook's user namespace \\(0-${mapping.uidCount - 1}\\); add subordinate ids .* or load the image with --ignore-chown-errors`));
  t.deepEqual(snapshot(s), before);
  const forced = await ok(t, s, ['import', '-q', '--ignore-chown-errors', file, 'unmapped']);
  const view = await new ImageStore(resolvePaths({ root: s.root, runroot: s.runroot })).resolveImage(forced.stdout.trim());
  t.is(lstatSync(join(layerDir(s, view.record.layers[0]!.diffId), 'etc/secret')).uid, process.getuid!());
});

test('import: name under localhost/, --change, compressed input, standard input', async (t) => {
  const s = await store(t);
  const gz = join(s.dir, 'rootfs.tar.gz');
  writeFileSync(gz, gzipSync(readFileSync(busyboxRootfsTar())));
  await ok(t, s, ['import', '-q', '-c', 'CMD ["/bin/sh", "-c", "echo hi"]', '-c', 'ENV FOO=bar', '-c', 'WORKDIR /tmp', '-m', 'from a test', gz, 'imported:1']);
  const [image] = JSON.parse((await ok(t, s, ['image', 'inspect', 'imported:1'])).stdout) as { RepoTags: string[]; Config: { Cmd: string[]; Env: string[]; WorkingDir: string }; Comment: string; RootFS: { Layers: string[] } }[];
  t.deepEqual(image!.RepoTags, ['localhost/imported:1']);
  t.deepEqual(image!.Config.Cmd, ['/bin/sh', '-c', 'echo hi']);
  t.true(image!.Config.Env.includes('FOO=bar'));
  t.is(image!.Config.WorkingDir, '/tmp');
  t.is(image!.Comment, 'from a test');
  t.deepEqual(image!.RootFS.Layers, [fixtureIndex().rootfsTarDigest]);
  const child = spawnNook(['import', '-q', '-', 'fromstdin'], { root: s.root, runroot: s.runroot, env: s.env });
  child.stdin!.end(readFileSync(busyboxRootfsTar()));
  const r = await child;
  t.is(r.exitCode, 0, String(r.stderr));
  t.regex((await ok(t, s, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout, /localhost\/fromstdin:latest/);
});

test('rmi and tags as podman: untag a shared name, refuse an id with several names, remove the last, exit 1 for unknown', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', busyboxDockerArchive()]);
  await ok(t, s, ['tag', 'busybox', 'other:1', 'quay.io/x/busybox:2']);
  const id = (await ok(t, s, ['images', '-q', '--no-trunc'])).stdout.trim().replace('sha256:', '');
  t.is((await ok(t, s, ['rmi', 'other:1'])).stdout, 'Untagged: localhost/other:1');
  const refused = await nook(s, ['rmi', id.slice(0, 12)]);
  t.is(refused.exitCode, 125, describe(refused));
  t.regex(refused.stderr, /has several names \(localhost\/busybox:latest, quay\.io\/x\/busybox:2\); remove them one by one or use --force/);
  await ok(t, s, ['image', 'untag', 'busybox', 'quay.io/x/busybox:2']);
  const removed = await ok(t, s, ['rmi', 'busybox']);
  t.is(removed.stdout, `Untagged: localhost/busybox:latest\nDeleted: ${id}`);
  t.deepEqual(snapshot(s).layers, []);
  t.deepEqual(snapshot(s).blobs, []);
  const unknown = await nook(s, ['rmi', 'nothing']);
  t.is(unknown.exitCode, 1, describe(unknown));
  t.is(unknown.stderr, 'Error: nothing: image not known');
  t.is((await nook(s, ['rmi', '-i', 'nothing'])).exitCode, 0);
});

test('an image used by a container is kept by rmi (exit 2) and prune', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', busyboxDockerArchive()]);
  const paths = resolvePaths({ root: s.root, runroot: s.runroot });
  const id = fixtureIndex().dockerArchive.configDigest.slice(7);
  const images = new ImageStore(paths, { containerImageIds: () => [id] });
  const report = await images.removeImages(['busybox']);
  t.is(report.errors[0]?.exitCode, RmiExit.InUse);
  t.regex(report.errors[0]?.message ?? '', /is in use by a container/);
  await images.removeName('localhost/busybox:latest');
  t.deepEqual((await images.pruneImages({ all: true })).deleted, []);
  t.is((await images.listImages()).length, 1);
  t.is((await new ImageStore(paths).pruneImages()).deleted.length, 1, 'without the container, the dangling image goes');
});

test('image prune removes dangling images and their content; system df reports', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', layeredOciLayout()]);
  await ok(t, s, ['import', '-q', busyboxRootfsTar(), 'named']);
  const df = JSON.parse((await ok(t, s, ['system', 'df', '--format', 'json'])).stdout) as { Type: string; Total: number; RawSize: number }[];
  t.is(df[0]!.Type, 'Images');
  t.is(df[0]!.Total, 2);
  t.true(df[0]!.RawSize > 2_000_000);
  const refused = await nook(s, ['image', 'prune']);
  t.is(refused.exitCode, 125);
  t.regex(refused.stderr, /use --force/);
  const pruned = await ok(t, s, ['image', 'prune', '-f']);
  t.is(pruned.stdout.split('\n').length, 1);
  t.deepEqual((await ok(t, s, ['images', '--format', '{{.Repository}}'])).stdout, 'localhost/named');
  // the layered image's top layer is gone, the shared busybox layer stays
  t.is(snapshot(s).layers.length, 1);
});

test('concurrency: two loads of the same archive at once, and loads racing rmi', async (t) => {
  const s = await store(t);
  const target = { root: s.root, runroot: s.runroot, env: s.env };
  const [a, b] = await Promise.all([spawnNook(['load', '-q', '-i', layeredOciLayout()], target), spawnNook(['load', '-q', '-i', layeredOciLayout()], target)]);
  t.is(a.exitCode, 0, String(a.stderr));
  t.is(b.exitCode, 0, String(b.stderr));
  t.is(snapshot(s).layers.length, 2);
  t.is(snapshot(s).images.length, 1);

  for (let round = 0; round < 3; round++) {
    const [load, rmi] = await Promise.all([spawnNook(['load', '-q', '-i', busyboxDockerArchive()], target), spawnNook(['rmi', '-i', '-f', 'localhost/busybox'], target)]);
    t.is(load.exitCode, 0, String(load.stderr));
    t.is(rmi.exitCode, 0, String(rmi.stderr));
    // whatever the order, the store is consistent: an image that is listed has every layer
    const images = new ImageStore(resolvePaths({ root: s.root, runroot: s.runroot }));
    for (const view of await images.listImages()) {
      for (const layer of view.record.layers) t.true(existsSync(layerDir(s, layer.diffId)), `round ${round}: layer of ${view.names.join(',')} present`);
      await images.imageForRun(view.record.id);
    }
  }
  t.deepEqual(snapshot(s).leases, []);
  t.deepEqual(snapshot(s).tmp, []);
});

test('imageForRun gives the layers top-most first and the run config', async (t) => {
  const s = await store(t);
  await ok(t, s, ['load', '-q', '-i', layeredOciLayout()]);
  const images = new ImageStore(resolvePaths({ root: s.root, runroot: s.runroot }));
  const id = (await images.listImages())[0]!.record.id;
  const image = await images.imageForRun(id.slice(0, 8));
  const facts = fixtureIndex().layered;
  t.deepEqual(image.layerDirs, facts.diffIds.map((d) => layerDir(s, d)).reverse());
  t.true(image.config.Env?.includes(layeredFacts.env));
  t.is(image.config.WorkingDir, layeredFacts.workingDir);
  t.is(image.whiteoutFormat, 'overlay');
  t.true(statSync(image.layerDirs[0]!).isDirectory());
  const { readImageFile } = await import('../../src/image/layer-files.js');
  const { linuxSyscalls } = await import('../../src/syscalls/syscalls.js');
  const sys = await linuxSyscalls();
  t.is(readImageFile(image.layerDirs, layeredFacts.changed.path, sys), layeredFacts.changed.content);
  t.is(readImageFile(image.layerDirs, layeredFacts.removed, sys), null);
  t.is(readImageFile(image.layerDirs, layeredFacts.opaqueHidden, sys), null);
  t.is(readImageFile(image.layerDirs, layeredFacts.opaqueKept.path, sys), layeredFacts.opaqueKept.content);
});
