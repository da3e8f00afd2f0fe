/**
 * Where the shared test fixtures are: the busybox images built by
 * test/fixtures/build-images.ts and the TLS + auth registry that
 * test/harness/run.sh starts. The harness passes them in NOOK_TEST_*
 * variables; the images also fall back to the cache in the checkout, so a
 * single image test runs with plain `npx ava` after one `npm test` (or
 * `node dist/test/fixtures/build-images.js`).
 *
 * Each accessor throws when its fixture is missing: a test that needs the
 * registry fails, it never passes without having run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultFixturesDir } from '../fixtures/build-images.js';
import { fixtureFiles, registryRepositories, type FixtureIndex } from '../fixtures/layout.js';

export { rootfsFacts, layeredFacts } from '../fixtures/busybox-rootfs.js';
export { registryRepositories, dockerArchiveRepoTags, type FixtureIndex, type ImageFacts } from '../fixtures/layout.js';

const howToGet = 'run the suite with `npm test` (test/harness/run.sh), or build the images with `node dist/test/fixtures/build-images.js`';

function fixturesDir(): string {
  const dir = process.env.NOOK_TEST_FIXTURES || defaultFixturesDir;
  if (!existsSync(join(dir, fixtureFiles.index))) throw new Error(`test images not found in ${dir}: ${howToGet}`);
  return dir;
}

function fixturePath(envName: string, name: string): string {
  const path = process.env[envName] || join(fixturesDir(), name);
  if (!existsSync(path)) throw new Error(`${envName}: ${path} does not exist: ${howToGet}`);
  return path;
}

/** The busybox root file system as one uncompressed tar (for `nook import`, layer extraction). */
export function busyboxRootfsTar(): string {
  return fixturePath('NOOK_TEST_ROOTFS_TAR', fixtureFiles.rootfsTar);
}

/** OCI image layout directory of busybox; its index.json names the image "latest". */
export function busyboxOciLayout(): string {
  return fixturePath('NOOK_TEST_BUSYBOX_OCI', fixtureFiles.busyboxOci);
}

/** busybox as `docker save` writes it; RepoTags are dockerArchiveRepoTags. */
export function busyboxDockerArchive(): string {
  return fixturePath('NOOK_TEST_BUSYBOX_ARCHIVE', fixtureFiles.busyboxDockerArchive);
}

/** Two-layer OCI layout (whiteout, opaque directory): see layeredFacts. */
export function layeredOciLayout(): string {
  return fixturePath('NOOK_TEST_LAYERED_OCI', fixtureFiles.layeredOci);
}

/** OCI layout whose "latest" is an index: the host's platform and a foreign one. */
export function multiArchOciLayout(): string {
  return fixturePath('NOOK_TEST_MULTIARCH_OCI', fixtureFiles.multiArchOci);
}

/** Digests and platforms of every built image, to compare what nook stored or pulled with. */
export function fixtureIndex(): FixtureIndex {
  return JSON.parse(readFileSync(join(fixturesDir(), fixtureFiles.index), 'utf8')) as FixtureIndex;
}

export interface TestRegistry {
  /** "127.0.0.1:PORT", what goes before the repository in an image reference */
  host: string;
  /** PEM file of the CA that signed the registry's certificate */
  caFile: string;
  /** directory holding ca.crt (skopeo --cert-dir, certs.d layout) */
  certDir: string;
  user: string;
  password: string;
  /** full references of the pushed images, e.g. "127.0.0.1:PORT/busybox:latest" */
  images: { [K in keyof typeof registryRepositories]: string };
}

/** The registry the harness started (TLS, basic auth), with the test images in it. */
export function testRegistry(): TestRegistry {
  const env = (name: string): string => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set: the test registry is started by test/harness/run.sh (npm test)`);
    return value;
  };
  const host = env('NOOK_TEST_REGISTRY');
  const images = Object.fromEntries(
    Object.entries(registryRepositories).map(([key, repo]) => [key, `${host}/${repo}`]),
  ) as TestRegistry['images'];
  return {
    host,
    caFile: env('NOOK_TEST_REGISTRY_CA'),
    certDir: env('NOOK_TEST_REGISTRY_CERT_DIR'),
    user: env('NOOK_TEST_REGISTRY_USER'),
    password: env('NOOK_TEST_REGISTRY_PASSWORD'),
    images,
  };
}

/**
 * A cgroup v2 directory delegated to the test user by the harness (started as
 * root on a pure cgroup v2 host; cpu, cpuset, io, memory and pids available
 * where the host has them), or undefined when there is none. ava runs in its
 * child "harness", so the directory itself holds no process and its
 * cgroup.subtree_control can be written.
 */
export function delegatedCgroup(): string | undefined {
  return process.env.NOOK_TEST_CGROUP || undefined;
}
