/**
 * Checks the test harness itself: the suite runs unprivileged (a test that
 * only passes as root proves nothing about a rootless runtime), the shared
 * image fixtures are well formed, and the registry answers as promised.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { get } from 'node:https';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { list, type ReadEntry } from 'tar';
import {
  busyboxDockerArchive,
  busyboxOciLayout,
  busyboxRootfsTar,
  dockerArchiveRepoTags,
  fixtureIndex,
  layeredFacts,
  layeredOciLayout,
  multiArchOciLayout,
  rootfsFacts,
  testRegistry,
} from '../helpers/fixtures.js';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

interface TarFile {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkpath: string;
  data: Buffer;
}

async function readTar(file: string): Promise<Map<string, TarFile>> {
  const entries = new Map<string, TarFile>();
  await list({
    file,
    onReadEntry: (entry: ReadEntry) => {
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => {
        entries.set(entry.path.replace(/\/$/, ''), {
          type: entry.type,
          mode: entry.mode ?? 0,
          uid: entry.uid ?? -1,
          gid: entry.gid ?? -1,
          linkpath: entry.linkpath ?? '',
          data: Buffer.concat(chunks),
        });
      });
    },
  });
  return entries;
}

/** Reads a blob and checks it against its descriptor. */
async function blob(layout: string, descriptor: Descriptor): Promise<Buffer> {
  const [algorithm, hex] = descriptor.digest.split(':');
  if (algorithm !== 'sha256' || !hex) throw new Error(`unexpected digest ${descriptor.digest}`);
  const data = await readFile(join(layout, 'blobs', 'sha256', hex));
  if (sha256(data) !== descriptor.digest) throw new Error(`blob ${descriptor.digest} does not match its digest`);
  if (data.length !== descriptor.size) throw new Error(`blob ${descriptor.digest} is ${data.length} bytes, descriptor says ${descriptor.size}`);
  return data;
}

/** Walks index.json -> manifest -> config and layers, checking every digest; returns the image's config. */
async function checkImage(layout: string, manifestDescriptor: Descriptor) {
  const manifest = JSON.parse((await blob(layout, manifestDescriptor)).toString()) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse((await blob(layout, manifest.config)).toString()) as {
    architecture: string;
    os: string;
    config: { Env?: string[]; Cmd?: string[]; WorkingDir?: string; Labels?: Record<string, string> };
    rootfs: { diff_ids: string[] };
  };
  const diffIds = [];
  for (const layer of manifest.layers) diffIds.push(sha256(gunzipSync(await blob(layout, layer))));
  return { manifest, config, diffIds };
}

async function rootDescriptor(layout: string): Promise<Descriptor> {
  const marker = JSON.parse(await readFile(join(layout, 'oci-layout'), 'utf8')) as { imageLayoutVersion: string };
  if (marker.imageLayoutVersion !== '1.0.0') throw new Error(`oci-layout says ${marker.imageLayoutVersion}`);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const latest = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'latest');
  if (!latest) throw new Error(`${layout}/index.json names no "latest"`);
  return latest;
}

test('the suite runs as an unprivileged user', (t) => {
  t.not(process.getuid?.(), 0, 'tests must not run as root: use npm test, which runs them as the user nooktest');
  t.not(process.geteuid?.(), 0);
});

test('the busybox OCI layout is well formed and matches fixtures.json', async (t) => {
  const layout = busyboxOciLayout();
  const root = await rootDescriptor(layout);
  const { config, diffIds } = await checkImage(layout, root);
  t.deepEqual(config.rootfs.diff_ids, diffIds);
  t.deepEqual(config.config.Cmd, [...rootfsFacts.cmd]);
  t.deepEqual(config.config.Env, [rootfsFacts.path]);
  const facts = fixtureIndex().busybox;
  t.is(root.digest, facts.manifestDigest);
  t.deepEqual(facts.diffIds, diffIds);
  t.is(config.architecture, facts.platform.architecture);
});

test('the layered OCI layout has two layers, the second with a whiteout and an opaque directory', async (t) => {
  const layout = layeredOciLayout();
  const root = await rootDescriptor(layout);
  const { manifest, config, diffIds } = await checkImage(layout, root);
  t.is(manifest.layers.length, 2);
  t.deepEqual(config.rootfs.diff_ids, diffIds);
  t.is(config.config.WorkingDir, layeredFacts.workingDir);
  t.is(root.digest, fixtureIndex().layered.manifestDigest);
  const second = gunzipSync(await blob(layout, manifest.layers[1]!)).toString('latin1');
  t.true(second.includes('layers-test/.wh.remove-me'));
  t.true(second.includes('layers-test/opaque/.wh..wh..opq'));
});

test('the multi-arch layout is an index of the host platform and a foreign one sharing a layer', async (t) => {
  const layout = multiArchOciLayout();
  const root = await rootDescriptor(layout);
  t.is(root.mediaType, 'application/vnd.oci.image.index.v1+json');
  const index = JSON.parse((await blob(layout, root)).toString()) as { manifests: Descriptor[] };
  t.is(index.manifests.length, 2);
  const images = await Promise.all(index.manifests.map((m) => checkImage(layout, m)));
  t.deepEqual(images.map((i) => i.config.architecture), index.manifests.map((m) => m.platform?.architecture));
  t.not(images[0]!.config.architecture, images[1]!.config.architecture);
  t.deepEqual(images[0]!.diffIds, images[1]!.diffIds);
  t.is(index.manifests[0]!.digest, fixtureIndex().busybox.manifestDigest);
  t.is(root.digest, fixtureIndex().multiArch.indexDigest);
});

test('the rootfs tar carries ownership, modes and links without root', async (t) => {
  const entries = await readTar(busyboxRootfsTar());
  const busybox = entries.get('bin/busybox');
  t.truthy(busybox);
  t.is(busybox!.mode & 0o777, 0o755);
  t.is(entries.get('bin/sh')?.linkpath, 'busybox');
  const owned = entries.get(rootfsFacts.ownedFile.path.slice(1));
  t.is(owned?.uid, 1000);
  t.is(owned?.gid, 1000);
  t.is(owned?.data.toString(), rootfsFacts.ownedFile.content);
  t.is(entries.get(rootfsFacts.hardlink.slice(1))?.type, 'Link');
  t.is(entries.get(rootfsFacts.setuidFile.path.slice(1))!.mode & 0o7777, 0o4755);
  t.is(entries.get('tmp')!.mode & 0o7777, 0o1777);
  t.regex(entries.get('etc/passwd')!.data.toString(), /^tester:x:1000:1000:/m);
  t.regex(entries.get('etc/passwd')!.data.toString(), /^nobody:x:65534:65534:/m);
});

test('the docker-archive is laid out as docker save writes it', async (t) => {
  const entries = await readTar(busyboxDockerArchive());
  const [manifest] = JSON.parse(entries.get('manifest.json')!.data.toString()) as { Config: string; RepoTags: string[]; Layers: string[] }[];
  t.deepEqual(manifest!.RepoTags, dockerArchiveRepoTags);
  const config = JSON.parse(entries.get(manifest!.Config)!.data.toString()) as { rootfs: { diff_ids: string[] } };
  t.deepEqual(manifest!.Layers.map((path) => sha256(entries.get(path)!.data)), config.rootfs.diff_ids);
  t.is(`sha256:${manifest!.Config.replace(/\.json$/, '')}`, fixtureIndex().dockerArchive.configDigest);
  t.truthy(entries.get('repositories'));
});

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

function httpsGet(url: string, options: { ca?: Buffer; auth?: string; accept?: string }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = get(
      url,
      {
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.auth ? { auth: options.auth } : {}),
        headers: options.accept ? { accept: options.accept } : {},
        timeout: 10_000,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
      },
    );
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error(`timeout: ${url}`)));
  });
}

test('the test registry speaks TLS with its own CA, asks for credentials, and holds the images', async (t) => {
  const registry = testRegistry();
  const ca = await readFile(registry.caFile);
  const base = `https://${registry.host}/v2`;
  await t.throwsAsync(httpsGet(`${base}/`, {}), undefined, 'a client without the test CA must not trust the registry');
  t.is((await httpsGet(`${base}/`, { ca })).status, 401);
  const auth = `${registry.user}:${registry.password}`;
  t.is((await httpsGet(`${base}/`, { ca, auth })).status, 200);
  t.is((await httpsGet(`${base}/`, { ca, auth: `${registry.user}:wrong` })).status, 401);

  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';
  const digestOf = async (repository: string) => {
    const result = await httpsGet(`${base}/${repository}/manifests/latest`, { ca, auth, accept });
    t.is(result.status, 200, repository);
    return { digest: result.headers['docker-content-digest'], type: result.headers['content-type'] };
  };
  const index = fixtureIndex();
  t.deepEqual(await digestOf('busybox'), { digest: index.busybox.manifestDigest, type: 'application/vnd.oci.image.manifest.v1+json' });
  t.deepEqual(await digestOf('layered'), { digest: index.layered.manifestDigest, type: 'application/vnd.oci.image.manifest.v1+json' });
  t.deepEqual(await digestOf('multiarch'), { digest: index.multiArch.indexDigest, type: 'application/vnd.oci.image.index.v1+json' });
  t.is((await digestOf('busybox-docker')).type, 'application/vnd.docker.distribution.manifest.v2+json');
  t.is(registry.images.busybox, `${registry.host}/busybox:latest`);
});
