/**
 * Pulls from a private docker-registry this file starts (./pull-helpers.ts),
 * for what needs the registry's content or connection changed: a tampered
 * blob, a pull killed halfway and resumed, zstd and uncompressed layers.
 * As the unprivileged test user.
 */
import test from 'ava';
import { existsSync, openSync, readdirSync, readFileSync, readSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, runNook, spawnNook, type NookResult } from '../helpers/nook.js';
import { tempStore, type TempStore } from '../helpers/store.js';
import { busyboxOciLayout, busyboxRootfsTar, fixtureIndex, layeredOciLayout } from '../helpers/fixtures.js';
import { requireHostTool } from '../helpers/host-tools.js';
import { ImageStore } from '../../src/image/store.js';
import { startPrivateRegistry, startProxy, type PrivateRegistry } from './pull-helpers.js';

const facts = fixtureIndex();
const hex = (digest: string) => digest.replace(/^sha256:/, '');

test.before((t) => {
  if (process.getuid?.() === 0) t.fail('run as the unprivileged test user (test/harness/run.sh does)');
});

function target(store: TempStore) {
  return { root: store.root, runroot: store.runroot, env: { ...store.env, XDG_RUNTIME_DIR: undefined } };
}

function pull(store: TempStore, registry: PrivateRegistry, image: string): Promise<NookResult> {
  return runNook(['pull', '--cert-dir', registry.certDir, image], { ...target(store), timeout: 90_000 });
}

function storageEntries(store: TempStore, sub: string): string[] {
  const dir = join(store.root, 'storage', sub);
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('a tampered blob in the registry fails the pull naming its digest, and the store stays clean', async (t) => {
  const registry = await startPrivateRegistry(t);
  await registry.push(busyboxOciLayout(), 'tampered:latest');
  const layer = facts.busybox.layerDigests[0]!;
  // flip one byte in the middle of the stored blob: same size, different content
  const file = registry.blobFile(layer);
  const fd = openSync(file, 'r+');
  try {
    const position = Math.floor(statSync(file).size / 2);
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, position);
    byte[0] = byte[0]! ^ 0xff;
    writeSync(fd, byte, 0, 1, position);
  } finally {
    closeSync(fd);
  }

  const store = await tempStore(t);
  const result = await pull(store, registry, `${registry.host}/tampered:latest`);
  t.is(result.exitCode, 125, describe(result));
  t.regex(result.stderr.trim().split('\n').pop()!, new RegExp(`^Error: blob ${layer} from ${registry.host}/tampered does not match its digest`));

  t.deepEqual(await new ImageStore({ root: store.root, runRoot: store.runroot }).listImages(), []);
  t.deepEqual(storageEntries(store, 'layers'), [], 'no layer');
  t.false(storageEntries(store, 'blobs/sha256').includes(hex(layer)), 'no blob');
  t.deepEqual(storageEntries(store, 'partial').filter((f) => !f.endsWith('.lock')), [], 'no partial download to resume from');
  t.deepEqual(storageEntries(store, 'tmp'), [], 'no work space');
});

test('a blob whose content is a good layer but not its digest: extracted while it downloads, and still nothing is kept', async (t) => {
  const registry = await startPrivateRegistry(t);
  await registry.push(layeredOciLayout(), 'retimed:latest');
  const [big] = facts.layered.layerDigests;
  // the gzip header's MTIME (bytes 4-7): same size, same tar inside (the diff id
  // checks out), another blob digest, noticed only once the last byte is in
  const file = registry.blobFile(big!);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from([0x12, 0x34, 0x56, 0x78]), 0, 4, 4);
  } finally {
    closeSync(fd);
  }

  const store = await tempStore(t);
  const result = await pull(store, registry, `${registry.host}/retimed:latest`);
  t.is(result.exitCode, 125, describe(result));
  t.regex(result.stderr.trim().split('\n').pop()!, new RegExp(`^Error: blob ${big} from ${registry.host}/retimed does not match its digest`));
  t.deepEqual(await new ImageStore({ root: store.root, runRoot: store.runroot }).listImages(), []);
  t.false(storageEntries(store, 'layers').includes(hex(facts.layered.diffIds[0]!)), 'no layer of that blob');
  t.false(storageEntries(store, 'blobs/sha256').includes(hex(big!)), 'no blob');
  t.deepEqual(storageEntries(store, 'partial').filter((f) => f.startsWith(hex(big!)) && !f.endsWith('.lock')), [], 'no partial download to resume from');
  t.deepEqual(storageEntries(store, 'tmp'), [], 'no work space');
});

/** Files of layers being extracted in the stores' work space (storage/tmp/LEASE/DIR/diff/...). */
function extractingFile(store: TempStore, relative: string): string | undefined {
  for (const lease of storageEntries(store, 'tmp')) {
    for (const work of storageEntries(store, `tmp/${lease}`)) {
      const path = join(store.root, 'storage/tmp', lease, work, 'diff', relative);
      if (existsSync(path)) return path;
    }
  }
  return undefined;
}

test('a pull killed in the middle of a download resumes from where it stopped and skips what was done', async (t) => {
  const registry = await startPrivateRegistry(t);
  await registry.push(layeredOciLayout(), 'resume:latest');
  const proxy = await startProxy(t, registry);
  const [big, small] = facts.layered.layerDigests;
  t.truthy(big && small);
  const bigSize = statSync(registry.blobFile(big!)).size;
  const cut = Math.floor(bigSize / 3);
  proxy.stall.set(big!, cut);

  const store = await tempStore(t);
  const image = `${proxy.host}/resume:latest`;
  const first = spawnNook(['pull', '--cert-dir', registry.certDir, image], target(store));
  const partial = join(store.root, 'storage/partial', `${hex(big!)}.partial`);
  const smallLayer = join(store.root, 'storage/layers', hex(facts.layered.diffIds[1]!));
  const deadline = Date.now() + 30_000;
  // the big blob stalls at `cut` bytes, its layer being extracted from what arrived; the small layer completes meanwhile
  const extracting = () => {
    const busybox = extractingFile(store, 'bin/busybox');
    return busybox !== undefined && statSync(busybox).size > 0;
  };
  while (!(existsSync(partial) && statSync(partial).size === cut && existsSync(smallLayer) && extracting())) {
    if (Date.now() > deadline || first.exitCode !== null) break;
    await sleep(50);
  }
  t.true(existsSync(partial) && statSync(partial).size === cut, `the download stalled at ${cut} bytes`);
  t.true(existsSync(smallLayer), 'the small layer was unpacked before the interruption');
  t.true(extracting(), 'the stalled layer is being extracted from the part that arrived');
  t.false(existsSync(join(store.root, 'storage/layers', hex(facts.layered.diffIds[0]!))), 'but it is not in the store');
  first.kill('SIGKILL');
  const killed = await first;
  t.is(killed.signal, 'SIGKILL');

  proxy.stall.clear();
  proxy.requests.length = 0;
  const second = await pull(store, registry, image);
  t.is(second.exitCode, 0, describe(second));
  t.is(second.stdout.trim().split('\n').pop(), hex(facts.layered.configDigest));
  const blobGets = proxy.requests.filter((r) => r.path.includes('/blobs/sha256:') && r.method === 'GET');
  const bigGets = blobGets.filter((r) => r.path.endsWith(big!));
  t.deepEqual(bigGets.map((r) => r.range), [`bytes=${cut}-`], 'only the rest of the big blob was asked for');
  t.false(blobGets.some((r) => r.path.endsWith(small!)), 'the finished layer was not downloaded again');
  t.regex(second.stderr, new RegExp(`Copying blob ${hex(small!).slice(0, 12)} skipped: already exists`));
  t.deepEqual(storageEntries(store, 'partial').filter((f) => !f.endsWith('.lock')), []);
  t.deepEqual(storageEntries(store, 'layers').sort(), facts.layered.diffIds.map(hex).sort());
});

test('zstd-compressed layers (through the zstd program)', async (t) => {
  requireHostTool('zstd');
  const registry = await startPrivateRegistry(t);
  await registry.push(busyboxOciLayout(), 'zstd:latest', ['--dest-compress-format', 'zstd', '--dest-compress']);
  const store = await tempStore(t);
  const zstd = await pull(store, registry, `${registry.host}/zstd:latest`);
  t.is(zstd.exitCode, 0, describe(zstd));
  const image = await new ImageStore({ root: store.root, runRoot: store.runroot }).findImage(`${registry.host}/zstd:latest`);
  t.is(image!.record.layers[0]!.compression, 'zstd');
  t.deepEqual(image!.record.layers.map((l) => l.diffId), facts.busybox.diffIds);
  t.true(statSync(join(store.root, 'storage/layers', hex(facts.busybox.diffIds[0]!), 'diff/bin/busybox')).isFile());
});

test('uncompressed layers', async (t) => {
  const registry = await startPrivateRegistry(t);
  // the rootfs tar itself as the layer, pushed as it is (skopeo would compress it)
  const rootfs = readFileSync(busyboxRootfsTar());
  const config = readFileSync(join(busyboxOciLayout(), 'blobs/sha256', hex(facts.busybox.configDigest)));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: facts.busybox.configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: facts.busybox.diffIds[0], size: rootfs.length }],
    }),
  );
  await registry.pushRaw('plain', 'latest', [rootfs, config], manifest, 'application/vnd.oci.image.manifest.v1+json');
  const store = await tempStore(t);
  const plain = await pull(store, registry, `${registry.host}/plain:latest`);
  t.is(plain.exitCode, 0, describe(plain));
  const image = await new ImageStore({ root: store.root, runRoot: store.runroot }).findImage(`${registry.host}/plain:latest`);
  t.is(image!.record.layers[0]!.compression, 'none');
  t.deepEqual(image!.record.layers.map((l) => l.diffId), facts.busybox.diffIds);
  t.true(statSync(join(store.root, 'storage/layers', hex(facts.busybox.diffIds[0]!), 'diff/bin/busybox')).isFile());
});

test('Ctrl-C stops a pull cleanly (exit 130, lease released); the next pull downloads only what was missing', async (t) => {
  const registry = await startPrivateRegistry(t);
  await registry.push(layeredOciLayout(), 'interrupt:latest');
  const proxy = await startProxy(t, registry);
  const [big, small] = facts.layered.layerDigests;
  proxy.stall.set(big!, 100_000);
  const store = await tempStore(t);
  const image = `${proxy.host}/interrupt:latest`;
  const child = spawnNook(['pull', '--cert-dir', registry.certDir, image], target(store));
  const partial = join(store.root, 'storage/partial', `${hex(big!)}.partial`);
  const smallLayer = join(store.root, 'storage/layers', hex(facts.layered.diffIds[1]!));
  const deadline = Date.now() + 30_000;
  while (!(existsSync(partial) && statSync(partial).size === 100_000 && existsSync(smallLayer)) && Date.now() < deadline && child.exitCode === null) await sleep(50);
  t.true(existsSync(smallLayer), 'the small layer was unpacked before the interruption');
  child.kill('SIGINT');
  const result = await child;
  t.is(result.exitCode, 130, result.stderr);
  t.is(result.stderr.trim().split('\n').pop(), 'Error: pull interrupted (SIGINT); run it again to resume');
  t.is(statSync(partial).size, 100_000, 'the partial download is kept for the next pull');
  t.deepEqual(storageEntries(store, 'leases'), [], 'the lease was released');
  t.deepEqual(storageEntries(store, 'tmp'), []);

  proxy.stall.clear();
  proxy.requests.length = 0;
  const again = await pull(store, registry, image);
  t.is(again.exitCode, 0, describe(again));
  const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
  t.deepEqual(blobGets.filter((r) => r.path.endsWith(big!)).map((r) => r.range), ['bytes=100000-']);
  t.false(blobGets.some((r) => r.path.endsWith(small!)), 'the layer downloaded before the interruption is not downloaded again');
  t.deepEqual(storageEntries(store, 'partial').filter((f) => !f.endsWith('.lock')), []);
});
