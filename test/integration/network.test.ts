/**
 * Container networking for real: a user+network namespace made with unshare
 * (as the executor makes a container's), slirp4netns attached to it by
 * attachNetwork, servers inside reached through published ports, and the
 * lifetime rules (slirp4netns ends with the container, survives nook).
 * Loopback only: every connection goes to 127.0.0.1 on the host, or to
 * addresses inside the test's own namespaces.
 */
import test from 'ava';
import { createServer, connect, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { attachNetwork } from '../../src/network/attach.js';
import { parseNetworkOption } from '../../src/network/mode.js';
import { namespacesFor } from '../../src/network/namespaces.js';
import { checkPortsAvailable, parsePublishList, type PortMapping } from '../../src/network/publish.js';
import { NookError } from '../../src/lib/errors.js';
import {
  inNamespace,
  makeNamespaceHolder,
  output,
  processState,
  requireTool,
  sleep,
  slirpProcessesFor,
  waitGone,
  type NamespaceHolder,
} from './network-fixture.js';

const BUSYBOX = '/usr/bin/busybox';

test.before(() => {
  requireTool('/usr/bin/slirp4netns');
  requireTool(BUSYBOX);
  requireTool('/usr/bin/nsenter');
  requireTool('/usr/bin/unshare');
});

async function freePorts(specs: string[]): Promise<PortMapping[]> {
  return checkPortsAvailable(parsePublishList(specs));
}

/** A published host port is reachable once slirp4netns listens; the server inside may need a moment more. */
async function httpGet(port: number, path = '/'): Promise<string> {
  let lastError: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const request = get({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
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

function startHttpd(holder: NamespaceHolder, port: number, content: string) {
  const www = join(holder.dir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'index.html'), content);
  return inNamespace(holder.pid, [BUSYBOX, 'httpd', '-f', '-p', String(port), '-h', www]);
}

/** A Node program run inside the namespace (the same node binary). */
function nodeInNamespace(holder: NamespaceHolder, code: string) {
  return inNamespace(holder.pid, [process.execPath, '-e', code]);
}

async function waitForLine(child: ReturnType<typeof inNamespace>, pattern: RegExp, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${JSON.stringify(text)}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
      const match = pattern.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new Error(`exited before ${pattern}: ${JSON.stringify(text)}`));
    });
  });
}

test('slirp4netns: a published TCP port reaches busybox httpd inside, and the namespace gets tap0 with 10.0.2.100', async (t) => {
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  const ports = await freePorts(['127.0.0.1::80']);
  const handle = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: holder.pid, ports, runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
  t.teardown(() => handle.stop());
  t.truthy(handle.helperPid);
  t.is(handle.state.address, '10.0.2.100');
  t.is(handle.state.ports[0]!.hostPort, ports[0]!.hostPort);

  const addr = await output(inNamespace(holder.pid, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'tap0']));
  t.regex(addr.stdout, /inet 10\.0\.2\.100\/24/);
  const route = await output(inNamespace(holder.pid, ['ip', 'route', 'show', 'default']));
  t.regex(route.stdout, /default via 10\.0\.2\.2 dev tap0/);

  const httpd = startHttpd(holder, 80, 'hello from inside\n');
  t.teardown(() => httpd.kill('SIGKILL'));
  t.is(await httpGet(ports[0]!.hostPort), 'hello from inside\n');
});

async function udpExchange(port: number, expectReply: boolean): Promise<string | null> {
  const client = createSocket('udp4');
  try {
    return await new Promise<string | null>((resolve, reject) => {
      let tries = 0;
      const timer = setInterval(send, 200);
      function send(): void {
        if (tries++ >= 15) {
          clearInterval(timer);
          if (expectReply) reject(new Error('no UDP reply'));
          else resolve(null);
          return;
        }
        client.send('ping', port, '127.0.0.1');
      }
      client.on('message', (m) => {
        clearInterval(timer);
        resolve(m.toString());
      });
      send();
    });
  } finally {
    client.close();
  }
}

for (const allow of [false, true]) {
  test(`slirp4netns: a published UDP port reaches a server inside; replies to a host-loopback client ${allow ? 'come back with' : 'are dropped without'} allow_host_loopback`, async (t) => {
    const holder = await makeNamespaceHolder();
    t.teardown(() => holder.destroy());
    const ports = await freePorts(['127.0.0.1::5353/udp']);
    const mode = parseNetworkOption(allow ? 'slirp4netns:allow_host_loopback=true' : 'slirp4netns');
    const handle = await attachNetwork(mode, { pid: holder.pid, ports, runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
    t.teardown(() => handle.stop());
    t.is(handle.warnings.length, allow ? 0 : 1);

    const server = nodeInNamespace(
      holder,
      `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log('got:'+m);s.send('echo:'+m,r.port,r.address)});s.bind(5353,()=>console.log('listening'));setTimeout(()=>process.exit(0),60000);`,
    );
    t.teardown(() => server.kill('SIGKILL'));
    await waitForLine(server, /listening/);
    const received = waitForLine(server, /got:ping/);
    const reply = await udpExchange(ports[0]!.hostPort, allow);
    t.is(await received, 'got:ping');
    // libslirp sends a reply addressed to the host's loopback only when host loopback is allowed (docs/networking.md)
    t.is(reply, allow ? 'echo:ping' : null);
  });
}

test('slirp4netns: connections through a published port appear inside as coming from the gateway', async (t) => {
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  const ports = await freePorts(['127.0.0.1::8000']);
  const handle = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: holder.pid, ports, runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
  t.teardown(() => handle.stop());
  const server = nodeInNamespace(
    holder,
    `const s=require('net').createServer(c=>{console.log('peer='+c.remoteAddress);c.end()});s.listen(8000,()=>console.log('listening'));setTimeout(()=>process.exit(0),60000);`,
  );
  t.teardown(() => server.kill('SIGKILL'));
  await waitForLine(server, /listening/);
  const peer = waitForLine(server, /peer=\S+/);
  await new Promise<void>((resolve, reject) => {
    const c = connect(ports[0]!.hostPort, '127.0.0.1', () => c.end());
    c.on('close', () => resolve());
    c.on('error', reject);
  });
  // documented in docs/networking.md: slirp4netns rewrites the source of forwarded connections
  t.is((await peer).replace('::ffff:', ''), 'peer=10.0.2.2');
});

async function hostLoopbackServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((c) => c.end('host says hi\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

for (const allow of [false, true]) {
  test(`slirp4netns: the host's 127.0.0.1 is ${allow ? 'reachable' : 'not reachable'} as 10.0.2.2 ${allow ? 'with' : 'without'} allow_host_loopback`, async (t) => {
    const { server, port } = await hostLoopbackServer();
    t.teardown(() => server.close());
    const holder = await makeNamespaceHolder();
    t.teardown(() => holder.destroy());
    const mode = parseNetworkOption(allow ? 'slirp4netns:allow_host_loopback=true' : 'slirp4netns');
    const handle = await attachNetwork(mode, { pid: holder.pid, ports: [], runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
    t.teardown(() => handle.stop());
    const result = await output(inNamespace(holder.pid, [BUSYBOX, 'timeout', '5', BUSYBOX, 'nc', '10.0.2.2', String(port)]));
    if (allow) t.is(result.stdout, 'host says hi\n');
    else t.is(result.stdout, '', `unexpected answer; nc stderr: ${result.stderr}`);
  });
}

test('none: the namespace keeps only lo (up, from the executor) and attachNetwork starts no helper', async (t) => {
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  const handle = await attachNetwork(parseNetworkOption('none'), { pid: holder.pid, ports: [], runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
  t.is(handle.helperPid, null);
  t.deepEqual(slirpProcessesFor(holder.pid), []);
  const links = await output(inNamespace(holder.pid, ['ip', '-o', 'link']));
  t.deepEqual(
    links.stdout.trim().split('\n').map((l) => l.split(':')[1]!.trim()),
    ['lo'],
  );
  t.regex(links.stdout, /<LOOPBACK,UP,LOWER_UP>/);
  const www = startHttpd(holder, 8080, 'local\n');
  t.teardown(() => www.kill('SIGKILL'));
  let body = '';
  for (let i = 0; i < 50 && body === ''; i++) {
    body = (await output(inNamespace(holder.pid, [BUSYBOX, 'wget', '-q', '-O-', 'http://127.0.0.1:8080/']))).stdout;
    if (body === '') await sleep(100);
  }
  t.is(body, 'local\n');
});

test('a port already taken on the host fails the check with a one-line reason, before anything starts', async (t) => {
  const { server, port } = await hostLoopbackServer();
  t.teardown(() => server.close());
  const error = await t.throwsAsync(checkPortsAvailable(parsePublishList([`127.0.0.1:${port}:80`])), { instanceOf: NookError });
  t.is(error!.message, `cannot publish 127.0.0.1:${port}/tcp: the port is already in use on the host`);
  t.false(error!.message.includes('\n'));
  // also on 0.0.0.0, which overlaps 127.0.0.1
  await t.throwsAsync(checkPortsAvailable(parsePublishList([`${port}:80`])), { message: /already in use/ });

  const udp = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  t.teardown(() => udp.close());
  await t.throwsAsync(checkPortsAvailable(parsePublishList([`127.0.0.1:${udp.address().port}:53/udp`])), { message: /\/udp: the port is already in use/ });
});

test('a privileged host port fails the check for an unprivileged user', async (t) => {
  const start = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  t.true(process.getuid!() !== 0, 'this test must run unprivileged (test/harness/run.sh)');
  if (start === 0) return t.pass('every port is unprivileged on this host');
  await t.throwsAsync(checkPortsAvailable(parsePublishList([`${start - 1}:80`])), { message: new RegExp(`ports below ${start} \\(net.ipv4.ip_unprivileged_port_start\\)`) });
});

test('a port taken after the check fails attachNetwork cleanly, and no slirp4netns is left', async (t) => {
  const ports = await freePorts(['127.0.0.1::80']);
  const { server } = await (async () => {
    const s = createServer();
    await new Promise<void>((resolve) => s.listen(ports[0]!.hostPort, '127.0.0.1', resolve));
    return { server: s };
  })();
  t.teardown(() => server.close());
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  await t.throwsAsync(attachNetwork(parseNetworkOption('slirp4netns'), { pid: holder.pid, ports, runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline }), {
    instanceOf: NookError,
    message: `cannot publish 127.0.0.1:${ports[0]!.hostPort}/tcp: slirp4netns could not bind it (is it in use?)`,
  });
  t.deepEqual(slirpProcessesFor(holder.pid), []);
});

test('slirp4netns ends when the container process ends (the monitor then exits and the lifeline closes)', async (t) => {
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  const handle = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: holder.pid, ports: [], runDir: holder.dir, runRoot: holder.dir, lifeline: holder.lifeline });
  const slirp = handle.helperPid!;
  t.not(processState(slirp), null);
  process.kill(holder.pid, 'SIGTERM');
  t.true(await waitGone(slirp), 'slirp4netns still runs after the container ended');
});

test('slirp4netns survives nook killed with -9 and ends with the container, even when the monitor is killed with -9', async (t) => {
  const holder = await makeNamespaceHolder();
  t.teardown(() => holder.destroy());
  // "nook": a separate Node process that attaches the network and is then killed -9 while the container runs.
  const attachModule = new URL('../../src/network/attach.js', import.meta.url).href;
  const modeModule = new URL('../../src/network/mode.js', import.meta.url).href;
  const nook = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { attachNetwork } = await import(${JSON.stringify(attachModule)});
       const { parseNetworkOption } = await import(${JSON.stringify(modeModule)});
       const h = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: ${holder.pid}, ports: [], runDir: ${JSON.stringify(join(holder.dir, 'run'))}, runRoot: ${JSON.stringify(holder.dir)}, lifeline: 3 });
       console.log('slirp=' + h.helperPid);
       setInterval(() => {}, 1000);`,
    ],
    // nook's end of the lifeline is handed to the "nook" process as its fd 3
    { stdio: ['ignore', 'pipe', 'inherit', holder.lifeline] },
  );
  t.teardown(() => nook.kill('SIGKILL'));
  closeSync(holder.lifeline); // only "nook" has it now
  const line = await waitForLine(nook, /slirp=\d+/);
  const slirp = Number(line.split('=')[1]);
  nook.kill('SIGKILL');
  await sleep(300);
  t.not(processState(slirp), null, 'slirp4netns must outlive nook (detached containers)');

  // The monitor dies with -9; the container process (which in this stand-in also inherited the lifeline) still runs.
  process.kill(holder.monitor.pid!, 'SIGKILL');
  await sleep(300);
  t.not(processState(slirp), null);
  process.kill(holder.pid, 'SIGKILL');
  t.true(await waitGone(slirp), 'slirp4netns outlived the container');
  t.deepEqual(slirpProcessesFor(holder.pid), []);
});

test('two containers: each slirp4netns is its own, and ending one leaves the other working', async (t) => {
  const a = await makeNamespaceHolder();
  t.teardown(() => a.destroy());
  const b = await makeNamespaceHolder();
  t.teardown(() => b.destroy());
  const [pa, pb] = [await freePorts(['127.0.0.1::80']), await freePorts(['127.0.0.1::80'])];
  const ha = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: a.pid, ports: pa, runDir: a.dir, runRoot: a.dir, lifeline: a.lifeline });
  const hb = await attachNetwork(parseNetworkOption('slirp4netns'), { pid: b.pid, ports: pb, runDir: b.dir, runRoot: b.dir, lifeline: b.lifeline });
  t.teardown(() => hb.stop());
  const httpdB = startHttpd(b, 80, 'b\n');
  t.teardown(() => httpdB.kill('SIGKILL'));
  process.kill(a.pid, 'SIGKILL');
  t.true(await waitGone(ha.helperPid!));
  t.is(await httpGet(pb[0]!.hostPort), 'b\n');
});


test('container:NAME: joining the user and network namespaces of another container shares its lo; the network namespace alone cannot be joined', async (t) => {
  const owner = await makeNamespaceHolder();
  t.teardown(() => owner.destroy());
  await attachNetwork({ kind: 'none' }, { pid: owner.pid, ports: [], runDir: owner.dir, runRoot: owner.dir, lifeline: owner.lifeline });
  const choice = namespacesFor({ kind: 'container', container: 'owner' }, { pid: owner.pid });
  const httpd = startHttpd(owner, 8080, 'shared lo\n');
  t.teardown(() => httpd.kill('SIGKILL'));
  // what the executor does with choice.joinUserNamespace and choice.net.path
  let body = '';
  for (let i = 0; i < 50 && body === ''; i++) {
    const r = await output(spawn('nsenter', [`--user=${choice.joinUserNamespace}`, `--net=${choice.net!.path}`, '--preserve-credentials', BUSYBOX, 'wget', '-q', '-O-', 'http://127.0.0.1:8080/'], { stdio: 'pipe' }));
    body = r.stdout;
    if (body === '') await sleep(100);
  }
  t.is(body, 'shared lo\n');
  // A fresh user namespace of the same user has no capability over the owner's network namespace.
  const alone = await output(spawn('unshare', ['-Ur', 'nsenter', `--net=${choice.net!.path}`, 'true'], { stdio: 'pipe' }));
  t.not(alone.code, 0);
  t.regex(alone.stderr, /Operation not permitted|Permission denied/);
});
