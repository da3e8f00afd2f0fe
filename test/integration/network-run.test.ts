/**
 * Networking end to end through the CLI: `nook run -d -p ...` with the real
 * executor, slirp4netns and a busybox image; `nook port`; the network modes;
 * and the rule that no slirp4netns outlives its container, even when nook
 * is killed with -9. Loopback only.
 */
import test from 'ava';
import { execa, type ResultPromise } from 'execa';
import { createServer } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { nookCli, nookEnv, processState, sleep, waitGone, type NookEnv as Env } from './network-fixture.js';

const CLI = nookCli;

/** slirp4netns processes whose API socket lies under this test's run root or names its container. */
function slirpProcesses(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('slirp4netns') && argv.some((a) => a.includes(marker)) && processState(Number(entry)) !== null) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function httpGet(port: number, path: string): Promise<string> {
  let lastError: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return await new Promise<string>((resolvePromise, reject) => {
        const request = get({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolvePromise(body) : reject(new Error(`HTTP ${res.statusCode}`))));
        });
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', reject);
      });
    } catch (error) {
      lastError = error;
      await sleep(100);
    }
  }
  throw lastError;
}

interface RecordedNetwork {
  helper?: { pid: number; apiSocket?: string };
  ports: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[];
}

async function networkState(env: Env, name: string): Promise<RecordedNetwork> {
  const { ContainerStore } = await import('../../src/container/store.js');
  const record = new ContainerStore({ root: env.root, runRoot: env.runRoot }).get(name);
  return record.network.state as RecordedNetwork;
}

test('run -d -p: busybox httpd answers on the published port; nook port lists it; stop ends slirp4netns', async (t) => {
  const env = await nookEnv(t);
  await env.nook(['run', '-d', '--name', 'web', '-p', '127.0.0.1::80', '-p', '127.0.0.1::53/udp', 'localhost/busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
  const state = await networkState(env, 'web');
  const tcp = state.ports.find((p) => p.protocol === 'tcp')!;
  const udp = state.ports.find((p) => p.protocol === 'udp')!;
  t.true(tcp.hostPort > 0);

  t.regex(await httpGet(tcp.hostPort, '/hostname'), /^[0-9a-f]{12}\n$/);
  const hosts = await httpGet(tcp.hostPort, '/hosts');
  t.regex(hosts, /10\.0\.2\.100\t\S+ web/);
  t.regex(hosts, /10\.0\.2\.2\thost\.containers\.internal/);
  t.regex(await httpGet(tcp.hostPort, '/resolv.conf'), /nameserver /);

  const all = await env.nook(['port', 'web']);
  t.is(all.stdout, `80/tcp -> 127.0.0.1:${tcp.hostPort}\n53/udp -> 127.0.0.1:${udp.hostPort}\n`);
  t.is((await env.nook(['port', 'web', '80'])).stdout, `127.0.0.1:${tcp.hostPort}\n`);
  t.deepEqual(JSON.parse((await env.nook(['port', 'web', '53/udp', '--format', 'json'])).stdout), [udp]);
  const missing = await env.nook(['port', 'web', '81'], { reject: false });
  t.is(missing.exitCode, 125);
  t.is(missing.stderr, 'Error: port 81/tcp is not published\n');

  const slirp = state.helper!.pid;
  t.not(processState(slirp), null);
  await env.nook(['stop', '-t', '1', 'web']);
  t.true(await waitGone(slirp), 'slirp4netns outlived its stopped container');
  const stopped = await env.nook(['port', 'web'], { reject: false });
  t.regex(stopped.stderr, /is not running/);
  await env.nook(['rm', 'web']);
  t.false(existsSync(state.helper!.apiSocket!), 'rm left the API socket behind');
});

test('run -p: a port taken on the host fails before the container starts, in one line', async (t) => {
  const env = await nookEnv(t);
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const r = await env.nook(['run', '--rm', '--name', 'clash', '-p', `127.0.0.1:${port}:80`, 'localhost/busybox', 'true'], { reject: false });
  t.is(r.exitCode, 125);
  t.is(r.stderr, `Error: cannot publish 127.0.0.1:${port}/tcp: the port is already in use on the host\n`);
  t.deepEqual(slirpProcesses(env.runRoot), []);
  const privileged = await env.nook(['run', '--rm', '-p', '80:80', 'localhost/busybox', 'true'], { reject: false });
  t.is(privileged.exitCode, 125);
  t.regex(privileged.stderr, /^Error: cannot publish host port 80\/tcp: ports below \d+ \(net\.ipv4\.ip_unprivileged_port_start\)/);
});

test('kill -9 of a foreground nook run: the container goes, and slirp4netns with it', async (t) => {
  const env = await nookEnv(t);
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const run: ResultPromise = execa(process.execPath, [CLI, '--root', env.root, '--runroot', env.runRoot, 'run', '--name', 'fg', '-p', `127.0.0.1:${port}:80`, 'localhost/busybox', 'httpd', '-f', '-p', '80', '-h', '/etc'], {
    reject: false,
    stdin: 'ignore',
  });
  t.teardown(() => run.kill('SIGKILL'));
  t.truthy(await httpGet(port, '/hostname'));
  const slirp = (await networkState(env, 'fg')).helper!.pid;
  run.kill('SIGKILL');
  await run;
  t.true(await waitGone(slirp, 10_000), 'slirp4netns outlived the container of a killed nook');
  t.deepEqual(slirpProcesses(env.runRoot), []);
});

test('run -d then kill -9 of the container: slirp4netns ends even though nook is long gone', async (t) => {
  const env = await nookEnv(t);
  await env.nook(['run', '-d', '--name', 'victim', '-p', '127.0.0.1::80', 'localhost/busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
  const { ContainerStore } = await import('../../src/container/store.js');
  const record = new ContainerStore({ root: env.root, runRoot: env.runRoot }).get('victim');
  const slirp = (record.network.state as RecordedNetwork).helper!.pid;
  t.not(processState(slirp), null, 'slirp4netns must outlive the nook run -d that started it');
  process.kill(record.pid!, 'SIGKILL');
  t.true(await waitGone(slirp, 10_000), 'slirp4netns outlived its container');
});

test('--network none: only lo, up', async (t) => {
  const env = await nookEnv(t);
  const r = await env.nook(['run', '--rm', '--network', 'none', 'localhost/busybox', 'ip', '-o', 'link']);
  const names = r.stdout.trim().split('\n').map((l) => l.split(':')[1]!.trim());
  t.deepEqual(names, ['lo']);
  t.regex(r.stdout, /<LOOPBACK,UP,LOWER_UP>/);
  t.deepEqual(slirpProcesses(env.runRoot), []);
});

test('--network host: the host\'s interfaces, no slirp4netns', async (t) => {
  const env = await nookEnv(t);
  const hostLinks = (await execa('ip', ['-o', 'link'])).stdout.split('\n').map((l) => l.split(':')[1]!.trim().split('@')[0]);
  const r = await env.nook(['run', '--rm', '--network', 'host', 'localhost/busybox', 'ip', '-o', 'link']);
  t.deepEqual(r.stdout.trim().split('\n').map((l) => l.split(':')[1]!.trim().split('@')[0]), hostLinks);
  t.deepEqual(slirpProcesses(env.runRoot), []);
  const refused = await env.nook(['run', '--rm', '--network', 'host', '-p', '8080:80', 'localhost/busybox', 'true'], { reject: false });
  t.is(refused.stderr, "Error: cannot publish ports with --network host: the container's ports already are the host's\n");
});

test('--network container:NAME shares the other container\'s network (its lo and its published ports)', async (t) => {
  const env = await nookEnv(t);
  await env.nook(['run', '-d', '--name', 'owner', '-p', '127.0.0.1::8080', 'localhost/busybox', 'httpd', '-f', '-p', '127.0.0.1:80', '-h', '/etc']);
  // the guest joins, and serves 8080 in the shared namespace, published by the owner
  await env.nook(['run', '-d', '--name', 'guest', '--network', 'container:owner', 'localhost/busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc']);
  const ownerPort = (await networkState(env, 'owner')).ports[0]!.hostPort;
  t.truthy(await httpGet(ownerPort, '/hostname'));
  const r = await env.nook(['run', '--rm', '--network', 'container:owner', 'localhost/busybox', 'wget', '-q', '-O-', 'http://127.0.0.1:80/hosts']);
  t.regex(r.stdout, /owner/);
});
