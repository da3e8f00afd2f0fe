/**
 * network: 128 MiB over TCP, both directions a rootless container has.
 *
 *  - published port: busybox httpd in the container serves a 128 MiB file
 *    from a tmpfs; curl on the host downloads it through 127.0.0.1:PORT
 *    (nook's executor forwarder, podman's rootlessport: each
 *    engine's default; and nook with --network pasta when passt is
 *    installed). Floor: the same file from busybox httpd on the host.
 *  - container to host: a server of this process on the host's 127.0.0.1
 *    sends 128 MiB to busybox wget in the container, which reaches it as
 *    10.0.2.2 (slirp4netns with allow_host_loopback=true); the time is taken
 *    by the server, from the request to the client's close. Floor: curl on
 *    the host.
 */
import { createServer, type Server } from 'node:http';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { runChecked, runCommand, sleep } from '../command.js';
import { freePort, interleaved, type BenchContext } from '../context.js';
import type { Engine, EngineName } from '../engines.js';
import { atLeast, compareRow, type Row } from '../report.js';
import { summarize } from '../stats.js';

const SIZE = 128 * 1024 * 1024;
const SERVE = `dd if=/dev/zero of=/srv/blob bs=1M count=${SIZE >> 20} 2>/dev/null && exec httpd -f -p 8080 -h /srv`;

/** curl's transfer time of a download to /dev/null, in bytes per second. */
async function download(url: string, env: NodeJS.ProcessEnv): Promise<number> {
  const result = await runChecked({ file: 'curl', args: ['-sSf', '-o', '/dev/null', '-w', '%{time_total} %{size_download}', url], env });
  const [seconds, bytes] = result.stdout.trim().split(' ').map(Number);
  if (bytes !== SIZE) throw new Error(`${url}: got ${bytes} bytes instead of ${SIZE}`);
  return bytes / seconds!;
}

async function waitForHttp(url: string, env: NodeJS.ProcessEnv): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const head = await runCommand({ file: 'curl', args: ['-sf', '-I', '-o', '/dev/null', url], env });
    if (head.exitCode === 0) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within 30 s`);
    await sleep(200);
  }
}

/** An HTTP server on 127.0.0.1 that sends SIZE bytes and reports, per request, how long until the client closed. */
async function startBlobServer(): Promise<{ port: number; next(): Promise<number>; close(): Promise<void> }> {
  const chunk = Buffer.alloc(1 << 20);
  let waiting: ((seconds: number) => void) | undefined;
  const done: number[] = [];
  const server: Server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    req.socket.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (waiting) {
        waiting(seconds);
        waiting = undefined;
      } else done.push(seconds);
    });
    res.writeHead(200, { 'content-length': String(SIZE), 'content-type': 'application/octet-stream', connection: 'close' });
    let sent = 0;
    const pump = () => {
      while (sent < SIZE) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    next: () => (done.length > 0 ? Promise.resolve(done.shift()!) : new Promise((resolve) => (waiting = resolve))),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function publishedPort(ctx: BenchContext): Promise<Row[]> {
  const driver = 'overlay';
  const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
  const urls = {} as Record<EngineName, string>;
  const name = 'bench-http';
  const serve = async (engine: Engine, container: string, network?: string) => {
    await engine.ensureImage(driver, ctx.busybox.archive);
    const port = await freePort();
    await runChecked(
      engine.run({
        image: ctx.busybox.ref, driver, detach: true, name: container, publish: [`127.0.0.1:${port}:8080`], tmpfs: ['/srv:rw,size=256m,mode=1777'], argv: ['sh', '-c', SERVE],
        ...(network ? { network } : {}),
      }),
    );
    const url = `http://127.0.0.1:${port}/blob`;
    await waitForHttp(url, ctx.env);
    await download(url, ctx.env); // warm-up
    return url;
  };
  const started: [Engine, string][] = [];
  try {
    for (const [key, engine] of Object.entries(engines) as [EngineName, Engine][]) {
      started.push([engine, name]);
      urls[key] = await serve(engine, name);
    }
    ctx.log('network: published port');
    const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.transfer, (key) => download(urls[key], ctx.env));

    // floor: the host's own busybox httpd on loopback
    const dir = join(ctx.work, 'http-floor');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'blob'), Buffer.alloc(SIZE));
    const port = await freePort();
    const httpd = spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', dir], { stdio: 'ignore', env: ctx.env });
    const floor: number[] = [];
    try {
      const url = `http://127.0.0.1:${port}/blob`;
      await waitForHttp(url, ctx.env);
      await download(url, ctx.env);
      for (let i = 0; i < ctx.runs.transfer; i++) floor.push(await download(url, ctx.env));
    } finally {
      httpd.kill();
      await rm(dir, { recursive: true, force: true });
    }
    const reference = { name: 'host loopback', summary: summarize(floor) };
    const row = compareRow({
      group: 'network',
      name: '128 MiB from the container through a published port (curl on the host)',
      unit: 'bytesPerSecond',
      nook: summarize(samples.nook),
      podman: summarize(samples.podman),
      reference,
    });
    const rows: Row[] = [{ ...row, goal: atLeast('nook/podman >= 1', row.ratio, 1) }];

    // nook's other user-mode network, where passt is installed: pasta forwards local connections with splice()
    if ((await runCommand({ file: 'sh', args: ['-c', 'command -v pasta'], env: ctx.env })).exitCode === 0) {
      ctx.log('network: published port, nook --network pasta');
      started.push([ctx.nook, `${name}-pasta`]);
      const url = await serve(ctx.nook, `${name}-pasta`, 'pasta');
      const pasta: number[] = [];
      for (let i = 0; i < ctx.runs.transfer; i++) pasta.push(await download(url, ctx.env));
      rows.push(compareRow({ group: 'network', name: '  the same, nook with --network pasta (podman: its default)', unit: 'bytesPerSecond', nook: summarize(pasta), podman: row.podman!, reference }));
    }
    return rows;
  } finally {
    for (const [engine, container] of started) await runCommand(engine.command(driver, ['rm', '-f', container]));
  }
}

async function containerToHost(ctx: BenchContext): Promise<Row> {
  const driver = 'overlay';
  const engines: Record<EngineName, Engine> = { nook: ctx.nook, podman: ctx.podman };
  const name = 'bench-client';
  const server = await startBlobServer();
  try {
    for (const engine of Object.values(engines)) {
      await engine.ensureImage(driver, ctx.busybox.archive);
      await runChecked(engine.run({ image: ctx.busybox.ref, driver, detach: true, name, network: 'slirp4netns:allow_host_loopback=true', argv: ['sleep', '100000'] }));
    }
    const fetch = async (engine: Engine) => {
      const timing = server.next();
      await runChecked(engine.exec(driver, name, ['wget', '-q', '-O', '/dev/null', `http://10.0.2.2:${server.port}/blob`]));
      return SIZE / (await timing);
    };
    for (const engine of Object.values(engines)) await fetch(engine);
    ctx.log('network: container to host');
    const samples = await interleaved(['nook', 'podman'] as const, ctx.runs.transfer, (key) => fetch(engines[key]));
    const floor: number[] = [];
    for (let i = 0; i < ctx.runs.transfer + 1; i++) {
      const timing = server.next();
      await runChecked({ file: 'curl', args: ['-sSf', '-o', '/dev/null', `http://127.0.0.1:${server.port}/blob`], env: ctx.env });
      const seconds = await timing;
      if (i > 0) floor.push(SIZE / seconds);
    }
    return compareRow({
      group: 'network',
      name: '128 MiB from a host service on 127.0.0.1 to the container (wget, 10.0.2.2)',
      unit: 'bytesPerSecond',
      nook: summarize(samples.nook),
      podman: summarize(samples.podman),
      reference: { name: 'host loopback', summary: summarize(floor) },
    });
  } finally {
    for (const engine of Object.values(engines)) await runCommand(engine.command(driver, ['rm', '-f', name]));
    await server.close();
  }
}

export async function benchNetwork(ctx: BenchContext): Promise<Row[]> {
  return [...(await publishedPort(ctx)), await containerToHost(ctx)];
}
