/**
 * Published TCP ports forwarded by the executor (slirp4netns mode), end to
 * end through the CLI: the monitor listens on the host, the container's setup
 * process accepts and connects from inside the container's network namespace
 * to 10.0.2.100, relaying with splice(). Content is checked with sha256 for
 * many parallel connections and large transfers both ways; half-close, a
 * port nobody listens on inside, a detached container, and the port being
 * free again once the container is gone. Loopback only.
 */
import test from 'ava';
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nookCli, nookEnv, sleep, waitGone, type NookEnv as Env } from './network-fixture.js';
import { exchange } from '../helpers/tcp.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface RecordedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: string;
}

async function containerRecord(env: Env, name: string): Promise<{ pid: number; ports: RecordedPort[]; helperPid: number }> {
  const { ContainerStore } = await import('../../src/container/store.js');
  const record = new ContainerStore({ root: env.root, runRoot: env.runRoot }).get(name);
  const state = record.network.state as { ports: RecordedPort[]; helper: { pid: number } };
  return { pid: record.pid!, ports: state.ports, helperPid: state.helper.pid };
}

function hostPort(ports: RecordedPort[], containerPort: number): number {
  return ports.find((p) => p.containerPort === containerPort && p.protocol === 'tcp')!.hostPort;
}

/** Retries while the servers inside start: a client accepted before they listen is closed at once. */
async function eventually<T>(attempt: () => Promise<T>, ok: (value: T) => boolean): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      const value = await attempt();
      if (ok(value)) return value;
      last = new Error(`unexpected answer: ${String(value).slice(0, 200)}`);
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw last;
}

/** The host's directory /w of the server container: a random file to download. */
function webDir(t: { teardown(fn: () => void): void }, bytes: number): { dir: string; big: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'nook-fwd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const big = randomBytes(bytes);
  writeFileSync(join(dir, 'big'), big);
  return { dir, big };
}

/**
 * The servers inside, in the test's own Node (the host's /usr mounted
 * read-only into the busybox image): an echo on 7, the sha256 of what it
 * receives until the client's end (half-close) on 9, /w/big on 80, the
 * client's address as the server sees it on 10. Node's backlog (511) takes
 * a burst of connections, which busybox's servers (backlog 9) reset.
 */
const SERVER = `
const net = require('net'), fs = require('fs'), crypto = require('crypto');
net.createServer((c) => c.pipe(c)).listen(7);
net.createServer({ allowHalfOpen: true }, (c) => { const h = crypto.createHash('sha256'); c.on('data', (d) => h.update(d)); c.on('end', () => c.end(h.digest('hex') + '\\n')); }).listen(9);
net.createServer((c) => fs.createReadStream('/w/big').pipe(c)).listen(80);
net.createServer((c) => c.end(c.remoteAddress + '\\n')).listen(10);
`;

function nodeInContainer(): string[] {
  if (!process.execPath.startsWith('/usr/')) throw new Error(`${process.execPath}: these tests mount the host's /usr into the container to run Node there; install node under /usr`);
  return ['-v', '/usr:/usr:ro', '-v', '/usr/lib:/lib:ro', '-v', '/lib64:/lib64:ro'];
}

async function runServers(env: Env, name: string, dir: string, extra: string[] = []): Promise<RecordedPort[]> {
  const publish = ['7', '9', '80', '10'].flatMap((p) => ['-p', `127.0.0.1::${p}`]);
  await env.nook(['run', '-d', '--name', name, '-v', `${dir}:/w`, ...nodeInContainer(), ...publish, ...extra, 'localhost/busybox', process.execPath, '-e', SERVER]);
  const { ports } = await containerRecord(env, name);
  await eventually(() => download(hostPort(ports, 10)), (b) => b.length > 0);
  return ports;
}

/** Reads until the server closes, without closing our side first (Node's servers end a half-closed socket early). */
function download(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

test('many parallel connections and large transfers both ways through the forwarder, content checked', async (t) => {
  const env = await nookEnv(t);
  const { dir, big } = webDir(t, 64 << 20);
  const ports = await runServers(env, 'fwd', dir);

  // 100 connections at once, each with its own data, echoed back
  const payloads = Array.from({ length: 100 }, () => randomBytes(256 << 10));
  const echoes = await Promise.all(payloads.map((p) => exchange(hostPort(ports, 7), p)));
  echoes.forEach((echo, i) => t.is(sha256(echo), sha256(payloads[i]!), `connection ${i}: ${echo.length} of ${payloads[i]!.length} bytes`));

  // container -> host: 64 MiB
  const got = await download(hostPort(ports, 80));
  t.is(got.length, big.length);
  t.is(sha256(got), sha256(big));
  // host -> container: 64 MiB, hashed inside
  const upload = randomBytes(64 << 20);
  t.is((await exchange(hostPort(ports, 9), upload)).toString(), `${sha256(upload)}\n`);
  // both ways at once on one connection: 32 MiB out while it comes back
  const both = randomBytes(32 << 20);
  t.is(sha256(await exchange(hostPort(ports, 7), both)), sha256(both));
});

test('half-close: a client that shuts down writing still gets the reply', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const ports = await runServers(env, 'half', dir);
  const reply = await new Promise<{ text: string; ended: boolean }>((resolve, reject) => {
    let text = '';
    let ended = false;
    const socket = connect(hostPort(ports, 9), '127.0.0.1', () => {
      socket.write('hello');
      socket.end(); // shutdown(SHUT_WR): the server inside sees the end of its input, then answers
    });
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('end', () => (ended = true));
    socket.on('close', () => resolve({ text, ended }));
    socket.on('error', reject);
  });
  t.is(reply.text, `${sha256(Buffer.from('hello'))}\n`);
  t.true(reply.ended, 'the reply ended with a clean FIN, not a reset');
});

test('a published port nobody listens on inside: the client is closed promptly, and the other ports keep working', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const ports = await runServers(env, 'refused', dir, ['-p', '127.0.0.1::81']);
  const port = hostPort(ports, 81);
  for (let i = 0; i < 20; i++) {
    const started = Date.now();
    const got = await exchange(port, Buffer.from('anyone?')).catch((error: NodeJS.ErrnoException) => Buffer.from(`error ${error.code}`));
    const took = Date.now() - started;
    t.true(got.length === 0 || /^error (ECONNRESET|EPIPE)$/.test(got.toString()), got.toString());
    t.true(took < 1000, `closed after ${took} ms`);
  }
  t.is((await exchange(hostPort(ports, 7), Buffer.from('still here'))).toString(), 'still here');
});

/** The pids holding the listening socket of 127.0.0.1:port (from /proc/net/tcp and each process's fds). */
function listenerHolders(port: number): number[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === `0100007F:${hexPort}` && f[3] === '0A')
    .map((f) => f[9]);
  const holders: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (inodes.some((inode) => link === `socket:[${inode}]`)) holders.push(Number(pid));
      }
    } catch {
      // another user's process, or gone
    }
  }
  return [...new Set(holders)];
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

test('a detached container keeps forwarding after nook exits: the listener is held by its setup process, and the server sees the container\'s own address', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const ports = await runServers(env, 'detached', dir);
  const { pid, helperPid } = await containerRecord(env, 'detached');
  const port = hostPort(ports, 10);
  const setup = parentOf(pid);
  t.deepEqual(listenerHolders(port), [setup], 'only the container\'s parent holds the listener');
  t.is(readFileSync(`/proc/${setup}/comm`, 'utf8').trim(), 'nook-exec');
  t.not(setup, helperPid);
  // as with podman's rootlessport: the container's own address, not slirp4netns's gateway 10.0.2.2
  t.regex((await download(hostPort(ports, 10))).toString(), /^(::ffff:)?10\.0\.2\.100\n$/);
  await sleep(500);
  t.is((await exchange(hostPort(ports, 7), Buffer.from('later'))).toString(), 'later');
});

async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

test('the port is free again right after nook rm -f, and a new container can publish it', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const ports = await runServers(env, 'first', dir);
  const port = hostPort(ports, 10);
  t.false(await canListen(port));
  await env.nook(['rm', '-f', 'first']);
  t.true(await canListen(port), 'rm -f returned while the port was still taken');
  await env.nook(['run', '-d', '--name', 'second', ...nodeInContainer(), '-p', `127.0.0.1:${port}:10`, 'localhost/busybox', process.execPath, '-e', SERVER]);
  t.regex((await eventually(() => download(port), (b) => b.length > 0)).toString(), /10\.0\.2\.100/);
});

test('kill -9 of a foreground nook run: the container ends and its published port is free', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const run = execa(process.execPath, [nookCli, '--root', env.root, '--runroot', env.runRoot, 'run', '--name', 'fg', '-v', `${dir}:/w`, ...nodeInContainer(), '-p', `127.0.0.1:${port}:10`, 'localhost/busybox', process.execPath, '-e', SERVER], {
    reject: false,
    stdin: 'ignore',
  });
  t.teardown(() => run.kill('SIGKILL'));
  await eventually(() => download(port), (b) => b.length > 0);
  const { pid } = await containerRecord(env, 'fg');
  const setup = parentOf(pid);
  run.kill('SIGKILL');
  await run;
  t.true(await waitGone(setup, 10_000), 'the setup process outlived a killed nook');
  t.true(await waitGone(pid, 10_000), 'the container outlived a killed nook');
  t.true(await canListen(port), 'the published port is still taken');
});

test('--network slirp4netns:port_handler=slirp4netns leaves the port to slirp4netns (the server sees its gateway, 10.0.2.2)', async (t) => {
  const env = await nookEnv(t);
  const { dir } = webDir(t, 1);
  const ports = await runServers(env, 'slirpfwd', dir, ['--network', 'slirp4netns:port_handler=slirp4netns']);
  const { pid, helperPid } = await containerRecord(env, 'slirpfwd');
  const port = hostPort(ports, 10);
  t.deepEqual(listenerHolders(port), [helperPid]);
  t.not(parentOf(pid), helperPid);
  t.regex((await download(port)).toString(), /^(::ffff:)?10\.0\.2\.2\n$/);
  const { ContainerStore } = await import('../../src/container/store.js');
  t.is(new ContainerStore({ root: env.root, runRoot: env.runRoot }).get('slirpfwd').network.mode, 'slirp4netns:port_handler=slirp4netns');
});
