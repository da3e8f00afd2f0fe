/**
 * Benchmark: pulling a multi-layer Debian-like image (~50 MB compressed,
 * ~5,000 files, 5 layers) from a local registry into an empty store, nook
 * against podman (when installed). The goal: nook in at most half of
 * podman's time.
 *
 *   node dist/bench/pull.js [--runs N] [--keep]
 *
 * No network: the image is built from this machine's own /usr (shared
 * libraries, Python, documentation, binaries, headers), a deterministic
 * choice of files, cached under $TMPDIR/nook-bench-pull-UID/. A docker-registry
 * (TLS, no auth) is started on a free loopback port for the run. Each run
 * pulls into a fresh store; the median is reported. Run it as the user you
 * care about: as root neither tool needs a user namespace to unpack.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile, copyFile, rename } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import * as tar from 'tar';

const LAYOUT_VERSION = 1;

/** Each layer: roots under / and a budget; files are taken in sorted order until a budget is spent. */
const LAYERS: { roots: string[]; maxFiles: number; maxBytes: number }[] = [
  { roots: ['usr/lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'usr/lib'], maxFiles: 1200, maxBytes: 70e6 },
  { roots: ['usr/lib/python3', 'usr/lib/python3.11', 'usr/lib/python3.12', 'usr/share/perl', 'usr/share/perl5'], maxFiles: 1300, maxBytes: 30e6 },
  { roots: ['usr/share/doc', 'usr/share/man', 'usr/share/locale'], maxFiles: 1300, maxBytes: 12e6 },
  { roots: ['usr/bin', 'usr/sbin'], maxFiles: 600, maxBytes: 25e6 },
  { roots: ['usr/include', 'usr/share/zoneinfo', 'etc'], maxFiles: 700, maxBytes: 5e6 },
];

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function pickFiles(roots: string[], maxFiles: number, maxBytes: number, taken: Set<string>): string[] {
  const picked: string[] = [];
  let bytes = 0;
  const walk = (dir: string): boolean => {
    let names: string[];
    try {
      names = readdirSync(join('/', dir)).sort();
    } catch {
      return true;
    }
    for (const name of names) {
      const rel = `${dir}/${name}`;
      let st;
      try {
        st = lstatSync(join('/', rel));
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (!walk(rel)) return false;
        continue;
      }
      if (!(st.isFile() || st.isSymbolicLink()) || taken.has(rel)) continue;
      if (st.isFile()) {
        try {
          statSync(join('/', rel)); // readable?
        } catch {
          continue;
        }
        if (bytes + st.size > maxBytes) continue;
        bytes += st.size;
      }
      picked.push(rel);
      taken.add(rel);
      if (picked.length >= maxFiles) return false;
    }
    return true;
  };
  for (const root of roots) if (picked.length < maxFiles && !walk(root)) break;
  return picked;
}

/** Builds (or finds) the OCI layout of the benchmark image; returns its directory. */
async function buildImage(cache: string): Promise<{ layout: string; files: number; compressed: number }> {
  const layout = join(cache, `debian-like-v${LAYOUT_VERSION}`);
  const summaryPath = join(layout, 'summary.json');
  if (existsSync(summaryPath)) return { layout, ...(JSON.parse(await readFile(summaryPath, 'utf8')) as { files: number; compressed: number }) };
  const work = await mkdtemp(join(cache, 'build-'));
  await mkdir(join(work, 'blobs/sha256'), { recursive: true });
  const taken = new Set<string>();
  const layers: { digest: string; size: number; diffId: string }[] = [];
  let files = 0;
  for (const [i, spec] of LAYERS.entries()) {
    const picked = pickFiles(spec.roots, spec.maxFiles, spec.maxBytes, taken);
    files += picked.length;
    // directory entries first, as real layers have them
    const dirs = new Set<string>();
    for (const file of picked) for (let d = dirname(file); d !== '.' && d !== '/'; d = dirname(d)) dirs.add(d);
    const list = [...[...dirs].sort(), ...picked];
    const plainPath = join(work, `layer${i}.tar`);
    await tar.create({ cwd: '/', file: plainPath, portable: true, noDirRecurse: true, mtime: new Date(0) }, list);
    const plain = await readFile(plainPath);
    const gz = join(work, `layer${i}.tar.gz`);
    await execa('gzip', ['-6', '-n', '-k', '-f', plainPath]);
    const compressed = await readFile(gz);
    const digest = sha256(compressed);
    await rename(gz, join(work, 'blobs/sha256', digest.slice(7)));
    await rm(plainPath);
    layers.push({ digest, size: compressed.length, diffId: sha256(plain) });
    process.stderr.write(`layer ${i}: ${picked.length} files, ${(plain.length / 1e6).toFixed(1)} MB, ${(compressed.length / 1e6).toFixed(1)} MB gzip\n`);
  }
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/usr/bin/bash'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'nook bench' })),
    }),
  );
  await writeFile(join(work, 'blobs/sha256', sha256(config).slice(7)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  await writeFile(join(work, 'blobs/sha256', sha256(manifest).slice(7)), manifest);
  await writeFile(join(work, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(work, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }),
  );
  const compressed = layers.reduce((n, l) => n + l.size, 0);
  await writeFile(join(work, 'summary.json'), JSON.stringify({ files, compressed }));
  await rm(layout, { recursive: true, force: true });
  await rename(work, layout);
  return { layout, files, compressed };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRegistry(dir: string): Promise<{ host: string; certDir: string; stop: () => Promise<void> }> {
  await mkdir(join(dir, 'certs'), { recursive: true });
  const ssl = (args: string[]) => execa('openssl', args);
  await ssl(['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-days', '2', '-subj', '/CN=nook bench CA', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await ssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.csr')]);
  await writeFile(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await ssl(['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', join(dir, 'ext'), '-out', join(dir, 'server.pem')]);
  await copyFile(join(dir, 'ca.pem'), join(dir, 'certs/ca.crt'));
  const host = `127.0.0.1:${await freePort()}`;
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: ${host}\n  secret: bench\n  tls:\n    certificate: ${join(dir, 'server.pem')}\n    key: ${join(dir, 'server.key')}\n`,
  );
  const child = execa('docker-registry', ['serve', join(dir, 'config.yml')], { reject: false, stdio: 'ignore' });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await execa('curl', ['-sf', '--cacert', join(dir, 'ca.pem'), `https://${host}/v2/`], { reject: false });
    if (up.exitCode === 0) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('docker-registry did not start');
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  return {
    host,
    certDir: join(dir, 'certs'),
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Sample {
  wall: number;
  /** user + system CPU seconds of the command and everything it started (a steadier measure on a busy machine) */
  cpu: number;
}

/** Runs argv under sh, whose `times` reports the CPU time of its children. */
async function measure(argv: string[]): Promise<Sample> {
  const start = process.hrtime.bigint();
  const result = await execa('sh', ['-c', '"$@" >/dev/null || exit 1; times', 'sh', ...argv]);
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const line = result.stdout.trim().split('\n').pop() ?? '';
  const seconds = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wall, cpu: seconds.reduce((a, b) => a + b, 0) };
}

async function timeRuns(label: string, runs: number, argv: (dir: string) => string[], scratch: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = await mkdtemp(join(scratch, `${label}-`));
    const sample = await measure(argv(dir));
    samples.push(sample);
    process.stderr.write(`${label} run ${i + 1}: ${sample.wall.toFixed(2)} s (cpu ${sample.cpu.toFixed(2)} s)\n`);
    // files owned by subordinate ids: remove them the way each tool would
    if (label === 'podman') await execa('podman', ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), 'unshare', 'rm', '-rf', join(dir, 'root')], { reject: false });
    else await execa('unshare', ['--map-root-user', '--map-auto', 'rm', '-rf', dir], { reject: false });
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  return samples;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, keep: { type: 'boolean', default: false } } });
  const runs = Math.max(1, Number(values.runs));
  const cache = join(tmpdir(), `nook-bench-pull-${process.getuid?.() ?? 0}`);
  await mkdir(cache, { recursive: true });
  const image = await buildImage(cache);
  process.stderr.write(`image: ${image.files} files, ${(image.compressed / 1e6).toFixed(1)} MB compressed, ${LAYERS.length} layers\n`);

  const scratch = await mkdtemp(join(tmpdir(), 'nook-bench-run-'));
  const registry = await startRegistry(join(scratch, 'registry'));
  try {
    await execa('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-cert-dir', registry.certDir, `oci:${image.layout}:latest`, `docker://${registry.host}/bench/debian-like:latest`]);
    const ref = `${registry.host}/bench/debian-like:latest`;
    const nookMain = fileURLToPath(new URL('../src/cli/main.cjs', import.meta.url));
    const nook = await timeRuns('nook', runs, (dir) => [process.execPath, nookMain, '--root', join(dir, 'root'), '--runroot', join(dir, 'run'), 'pull', '-q', '--cert-dir', registry.certDir, ref], scratch);
    const wall = (samples: Sample[]) => Number(median(samples.map((s) => s.wall)).toFixed(3));
    const cpu = (samples: Sample[]) => Number(median(samples.map((s) => s.cpu)).toFixed(3));
    const result: Record<string, unknown> = {
      image: { files: image.files, compressedBytes: image.compressed, layers: LAYERS.length },
      nook: { wallSeconds: wall(nook), cpuSeconds: cpu(nook) },
    };
    const podman = await execa('podman', ['--version'], { reject: false });
    if (podman.exitCode === 0) {
      const theirs = await timeRuns('podman', runs, (dir) => ['podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'overlay', 'pull', '-q', '--cert-dir', registry.certDir, ref], scratch);
      result.podman = { wallSeconds: wall(theirs), cpuSeconds: cpu(theirs), version: podman.stdout.trim() };
      result.ratio = Number((wall(nook) / wall(theirs)).toFixed(3));
      result.cpuRatio = Number((cpu(nook) / cpu(theirs)).toFixed(3));
      result.goal = 'ratio (wall) <= 0.5';
      result.met = (result.ratio as number) <= 0.5;
    } else {
      result.podman = 'not installed (apt-get install podman) - no comparison';
    }
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await registry.stop();
    if (!values.keep) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/pull: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
