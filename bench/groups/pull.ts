/**
 * pull and load of the two-layer Debian image into an empty store (a new
 * --root for every repetition), until the command exits: the layers are
 * downloaded (pull) or read (load), verified and extracted with their owners
 * in the user namespace. Store removal is not timed.
 *
 * pull comes from the harness's registry (docker-registry, TLS, basic auth)
 * on 127.0.0.1; the floor is what the transfer and unpacking cost without an
 * engine: `curl | tar -xz` of each layer in turn, no user namespace (so no
 * owners), no verification.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { timeChecked, type Command } from '../command.js';
import { interleaved, requireDebian, type BenchContext } from '../context.js';
import { NookEngine, PodmanEngine, removeTree, type Engine, type EngineName } from '../engines.js';
import { pushImage, registryStateDir, startRegistry, type Registry } from '../registry.js';
import { atMost, compareRow, type Row } from '../report.js';
import { summarize } from '../stats.js';

const GOAL = 0.5;

/** label: short, since podman's run root (under the runtime directory) must stay under 50 characters */
function freshEngine(ctx: BenchContext, name: EngineName, label: string): Engine {
  const dir = join(ctx.work, `${label}-${name}`);
  return name === 'nook' ? new NookEngine(dir, ctx.env) : new PodmanEngine(dir, ctx.env, join(ctx.runtimeDir, label));
}

/** Time of `operation` on a new, empty store of the engine, which is then removed. */
async function onEmptyStore(ctx: BenchContext, name: EngineName, label: string, i: number, operation: (engine: Engine) => Command): Promise<number> {
  const engine = freshEngine(ctx, name, `${label}${i}`);
  try {
    return await timeChecked(operation(engine));
  } finally {
    await engine.destroy();
  }
}

async function layerDigests(ociLayout: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(ociLayout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(ociLayout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((layer) => layer.digest);
}

export async function benchPull(ctx: BenchContext): Promise<Row[]> {
  const debian = requireDebian(ctx);
  ctx.log('pull: starting the registry and pushing the Debian image');
  const registry: Registry = await startRegistry(registryStateDir(ctx.work), ctx.fixturesDir);
  try {
    const ref = await pushImage(registry, debian.ociLayout, 'bench-debian');
    const pull = (engine: Engine) => engine.pull('overlay', ref, registry);
    // once each, untimed: TLS session set-up, the registry's caches, podman's first start
    for (const name of ['nook', 'podman'] as const) await onEmptyStore(ctx, name, 'pw', 0, pull);
    ctx.log('pull: measuring');
    const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.heavy, (name, i) => onEmptyStore(ctx, name, 'p', i, pull));

    const digests = await layerDigests(debian.ociLayout);
    const caFile = join(registry.certDir, 'ca.crt');
    const floor: number[] = [];
    for (let i = 0; i < ctx.runs.heavy; i++) {
      const dir = join(ctx.work, `pull-floor-${i}`);
      await mkdir(dir, { recursive: true });
      const script = digests.map((_d, n) => `curl -sSf --cacert "$1" -u "$2" "https://$3/v2/bench-debian/blobs/\${${n + 5}}" | tar -xz -C "$4"`).join(' && ');
      floor.push(await timeChecked({ file: 'sh', args: ['-c', `set -e; ${script}`, 'sh', caFile, registry.creds, registry.host, dir, ...digests], env: ctx.env }));
      await removeTree(dir, ctx.env);
    }
    const row = compareRow({
      group: 'pull',
      name: `debian (${debian.layers} layers, ${(debian.compressedBytes / 1e6).toFixed(0)} MB gzip) into an empty store`,
      unit: 'seconds',
      nook: summarize(samples.nook),
      podman: summarize(samples.podman),
      reference: { name: 'curl | tar -xz', summary: summarize(floor) },
    });
    return [{ ...row, goal: atMost(`nook/podman <= ${GOAL}`, row.ratio, GOAL) }];
  } finally {
    await registry.stop();
  }
}

export async function benchLoad(ctx: BenchContext): Promise<Row[]> {
  const debian = requireDebian(ctx);
  const load = (engine: Engine) => engine.load('overlay', debian.archive);
  for (const name of ['nook', 'podman'] as const) await onEmptyStore(ctx, name, 'lw', 0, load);
  ctx.log('load: measuring');
  const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.heavy, (name, i) => onEmptyStore(ctx, name, 'l', i, load));
  const floor: number[] = [];
  for (let i = 0; i < ctx.runs.heavy; i++) {
    const dir = join(ctx.work, `load-floor-${i}`);
    await mkdir(dir, { recursive: true });
    // the archive unpacked, then each layer.tar in it: what reading the archive costs without an engine
    floor.push(
      await timeChecked({
        file: 'sh',
        args: ['-c', 'set -e; cd "$2"; tar -xf "$1"; mkdir rootfs; for l in */layer.tar; do tar -xf "$l" -C rootfs; done', 'sh', debian.archive, dir],
        env: ctx.env,
      }),
    );
    await removeTree(dir, ctx.env);
  }
  return [
    compareRow({
      group: 'load',
      name: `debian docker-archive (${(debian.uncompressedBytes / 1e6).toFixed(0)} MB) into an empty store`,
      unit: 'seconds',
      nook: summarize(samples.nook),
      podman: summarize(samples.podman),
      reference: { name: 'tar -x', summary: summarize(floor) },
    }),
  ];
}
