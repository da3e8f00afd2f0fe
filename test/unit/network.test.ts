import test from 'ava';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NookError } from '../../src/lib/errors.js';
import { DEFAULT_SLIRP_OPTIONS, formatNetworkMode, parseCidr, parseNetworkOption, slirpAddresses } from '../../src/network/mode.js';
import { checkPortsAvailable, formatPort, parsePublish, parsePublishList } from '../../src/network/publish.js';
import { namespacesFor } from '../../src/network/namespaces.js';
import { renderContainerFiles, upstreamResolvers, type HostResolverFiles } from '../../src/network/files.js';
import { parseSlirpHelp } from '../../src/network/slirp-features.js';
import { slirp4netnsArgs } from '../../src/network/slirp4netns.js';
import { apiSocketPath, checkPublishAllowed } from '../../src/network/attach.js';
import { pastaArgs } from '../../src/network/pasta.js';
import { executorPortForwards, portsLeftToHelper } from '../../src/network/port-forwards.js';

// ---- --network

test('parseNetworkOption: plain modes', (t) => {
  t.deepEqual(parseNetworkOption('slirp4netns'), { kind: 'slirp4netns', options: { ...DEFAULT_SLIRP_OPTIONS } });
  t.deepEqual(parseNetworkOption('none'), { kind: 'none' });
  t.deepEqual(parseNetworkOption('host'), { kind: 'host' });
  t.deepEqual(parseNetworkOption('container:web'), { kind: 'container', container: 'web' });
  t.deepEqual(parseNetworkOption('pasta'), { kind: 'pasta', args: [] });
  t.deepEqual(parseNetworkOption('pasta:-T,8080,--ipv4-only'), { kind: 'pasta', args: ['-T', '8080', '--ipv4-only'] });
});

test('parseNetworkOption: slirp4netns options', (t) => {
  const mode = parseNetworkOption('slirp4netns:allow_host_loopback=true,cidr=10.5.0.0/24,mtu=1500,port_handler=slirp4netns,enable_ipv6=false');
  t.deepEqual(mode, { kind: 'slirp4netns', options: { allowHostLoopback: true, cidr: '10.5.0.0/24', mtu: 1500, enableIpv6: false, portHandler: 'slirp4netns' } });
  t.is(formatNetworkMode(mode), 'slirp4netns:allow_host_loopback=true,cidr=10.5.0.0/24,mtu=1500,port_handler=slirp4netns');
  t.is(formatNetworkMode(parseNetworkOption('slirp4netns:port_handler=rootlesskit')), 'slirp4netns');
  t.is(formatNetworkMode(parseNetworkOption('slirp4netns:')), 'slirp4netns');
});

test('parseNetworkOption: one-line errors for what cannot work', (t) => {
  const cases: [string, RegExp][] = [
    ['bridge', /not available rootless/],
    ['wifi', /unknown --network mode "wifi"/],
    ['container:', /needs a container name/],
    ['none:x', /takes no options/],
    ['slirp4netns:port_handler=pasta', /port_handler must be rootlesskit \(the default: nook's own forwarder\) or slirp4netns, not "pasta"/],
    ['slirp4netns:mtu=70000', /mtu must be an integer from 68 to 65521/],
    ['slirp4netns:cidr=10.0.2.0/28', /prefix from \/1 to \/25/],
    ['slirp4netns:cidr=300.0.2.0/24', /cidr must be/],
    ['slirp4netns:allow_host_loopback=maybe', /true or false/],
    ['slirp4netns:outbound=1', /unknown slirp4netns option "outbound"/],
  ];
  for (const [value, message] of cases) {
    const error = t.throws(() => parseNetworkOption(value), { instanceOf: NookError, message }, value);
    t.false(error!.message.includes('\n'));
  }
});

test('slirpAddresses: gateway .2, DNS .3, guest .100 of the network', (t) => {
  t.deepEqual(slirpAddresses('10.0.2.0/24'), { gateway: '10.0.2.2', dns: '10.0.2.3', guest: '10.0.2.100', prefix: 24 });
  t.deepEqual(slirpAddresses('192.168.77.9/24'), { gateway: '192.168.77.2', dns: '192.168.77.3', guest: '192.168.77.100', prefix: 24 });
  t.deepEqual(parseCidr('10.0.0.0/8'), { network: 0x0a000000, prefix: 8 });
});

// ---- -p

test('executorPortForwards: TCP ports of slirp4netns go to the executor, towards the guest address; UDP, pasta and port_handler=slirp4netns do not', (t) => {
  const ports = parsePublishList(['127.0.0.1:8080:80', '9090:90', '5353:53/udp']);
  const forwards = executorPortForwards(parseNetworkOption('slirp4netns'), ports);
  t.deepEqual(forwards, [
    { hostIp: '127.0.0.1', hostPort: 8080, containerIp: '10.0.2.100', containerPort: 80 },
    { hostIp: '0.0.0.0', hostPort: 9090, containerIp: '10.0.2.100', containerPort: 90 },
  ]);
  t.deepEqual(portsLeftToHelper(ports, forwards), [ports[2]]);
  t.deepEqual(executorPortForwards(parseNetworkOption('slirp4netns:cidr=10.42.0.0/24'), ports)[0]!.containerIp, '10.42.0.100');
  t.deepEqual(executorPortForwards(parseNetworkOption('slirp4netns:port_handler=slirp4netns'), ports), []);
  t.deepEqual(executorPortForwards(parseNetworkOption('pasta'), ports), []);
  t.deepEqual(portsLeftToHelper(ports, []), ports);
});

test('parsePublish: the forms podman accepts', (t) => {
  t.deepEqual(parsePublish('8080:80'), [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  t.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
  t.deepEqual(parsePublish('80'), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, protocol: 'tcp' }]);
  t.deepEqual(parsePublish('127.0.0.1::80/TCP'), [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }]);
  t.deepEqual(parsePublish('8080-8081:80-81'), [
    { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    { hostIp: '0.0.0.0', hostPort: 8081, containerPort: 81, protocol: 'tcp' },
  ]);
  t.is(formatPort(parsePublish('127.0.0.1:8080:80/udp')[0]!), '127.0.0.1:8080->80/udp');
});

test('parsePublish: errors', (t) => {
  const cases: [string, RegExp][] = [
    ['8080:80/sctp', /protocol must be tcp or udp/],
    ['0:80', /host port 0 is outside 1-65535/],
    ['8080:70000', /container port 70000 is outside/],
    ['8080-8082:80-81', /host range has 3 ports and the container range 2/],
    ['8081-8080:80-81', /reversed/],
    ['a:80', /"a" is not a host port/],
    ['1.2.3:8080:80', /not an IPv4 address/],
    ['[::1]:8080:80', /IPv6 host addresses are not supported/],
    ['1:2:3:4', /expected \[ip:\]\[hostPort:\]containerPort/],
  ];
  for (const [value, message] of cases) t.throws(() => parsePublish(value), { instanceOf: NookError, message }, value);
  t.throws(() => parsePublishList(['8080:80', '127.0.0.1:8080:81']), { message: 'host port 8080/tcp is published twice' });
  t.notThrows(() => parsePublishList(['8080:80', '8080:80/udp', '80', '80']));
});

test('checkPortsAvailable: privileged ports fail for non-root before any bind', async (t) => {
  await t.throwsAsync(checkPortsAvailable(parsePublish('80:80'), { uid: 1000, unprivilegedPortStart: 1024 }), {
    instanceOf: NookError,
    message: 'cannot publish host port 80/tcp: ports below 1024 (net.ipv4.ip_unprivileged_port_start) need root; publish a higher port (-p 8080:80) or lower that sysctl',
  });
});

test('checkPortsAvailable: port 0 becomes a free port, the rest stays', async (t) => {
  const [resolved] = await checkPortsAvailable(parsePublish('127.0.0.1::80'));
  t.true(resolved!.hostPort >= 1024);
  t.like(resolved, { hostIp: '127.0.0.1', containerPort: 80, protocol: 'tcp' });
});

test('checkPortsAvailable: an address that is not the host\'s', async (t) => {
  // TEST-NET-1 (RFC 5737) is never configured locally; bind fails without sending anything.
  await t.throwsAsync(checkPortsAvailable(parsePublish('192.0.2.1:18080:80')), { message: 'cannot publish 192.0.2.1:18080/tcp: 192.0.2.1 is not an address of this host' });
});

test('checkPublishAllowed: -p only where nook forwards ports', (t) => {
  const ports = parsePublish('8080:80');
  t.throws(() => checkPublishAllowed({ kind: 'none' }, ports), { message: /--network none: the container has no network/ });
  t.throws(() => checkPublishAllowed({ kind: 'host' }, ports), { message: /already are the host's/ });
  t.throws(() => checkPublishAllowed({ kind: 'container', container: 'db' }, ports), { message: /publish them on db/ });
  t.notThrows(() => checkPublishAllowed(parseNetworkOption('slirp4netns'), ports));
  t.notThrows(() => checkPublishAllowed({ kind: 'none' }, []));
});

// ---- namespaces

test('namespacesFor: new, joined or host network namespace', (t) => {
  t.deepEqual(namespacesFor(parseNetworkOption('slirp4netns')), { net: { type: 'net' }, joinUserNamespace: null, sysfsMountable: true, needsAttach: true });
  t.deepEqual(namespacesFor({ kind: 'none' }), { net: { type: 'net' }, joinUserNamespace: null, sysfsMountable: true, needsAttach: false });
  t.deepEqual(namespacesFor({ kind: 'host' }), { net: null, joinUserNamespace: null, sysfsMountable: false, needsAttach: false });
  t.deepEqual(namespacesFor({ kind: 'container', container: 'db' }, { pid: 4242 }), {
    net: { type: 'net', path: '/proc/4242/ns/net' },
    joinUserNamespace: '/proc/4242/ns/user',
    sysfsMountable: true,
    needsAttach: false,
  });
  t.throws(() => namespacesFor({ kind: 'container', container: 'db' }));
});

// ---- resolv.conf and hosts

const plainHost: HostResolverFiles = {
  resolvConf: '# comment\nnameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n',
  systemdResolvConf: null,
  hosts: '127.0.0.1 localhost\n192.0.2.10 buildhost\n',
};
const stubHost: HostResolverFiles = {
  resolvConf: 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n',
  systemdResolvConf: 'nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 127.0.0.1\nsearch corp.example\n',
  hosts: null,
};
const identity = { hostname: 'abc123', name: 'web' };

test('containerFiles: slirp4netns uses its DNS forwarder 10.0.2.3 and names the host', (t) => {
  const files = renderContainerFiles(parseNetworkOption('slirp4netns'), identity, plainHost);
  t.true(files.resolvConf.includes('nameserver 10.0.2.3\n'));
  t.false(files.resolvConf.includes('192.0.2.53'));
  t.true(files.resolvConf.includes('search example.org'));
  t.true(files.resolvConf.includes('options ndots:2'));
  t.true(files.hosts.includes('127.0.0.1\tlocalhost'));
  t.true(files.hosts.includes('::1\tlocalhost'));
  t.true(files.hosts.includes('10.0.2.100\tabc123 web\n'));
  t.true(files.hosts.includes('10.0.2.2\thost.containers.internal'));
});

test('containerFiles: behind a 127.x stub, the upstream servers of systemd-resolved', (t) => {
  t.deepEqual(upstreamResolvers(stubHost).nameservers, ['192.0.2.1', '192.0.2.2']);
  const files = renderContainerFiles(parseNetworkOption('slirp4netns:cidr=10.9.0.0/24'), identity, stubHost);
  t.regex(files.resolvConf, /nameserver 192\.0\.2\.1\nnameserver 192\.0\.2\.2\n$/);
  t.false(files.resolvConf.includes('127.0.0.53'));
  t.true(files.resolvConf.includes('search corp.example'));
  t.true(files.hosts.includes('10.9.0.100\tabc123 web'));
  t.true(files.hosts.includes('10.9.0.2\thost.containers.internal'));
  // a stub without systemd-resolved's file: fall back to the forwarder, which reaches the stub from the host side
  const noUpstream = renderContainerFiles(parseNetworkOption('slirp4netns'), identity, { ...stubHost, systemdResolvConf: null });
  t.regex(noUpstream.resolvConf, /nameserver 10\.0\.2\.3\n$/);
});

test('containerFiles: host mode keeps the host files, none has no servers', (t) => {
  const host = renderContainerFiles({ kind: 'host' }, identity, stubHost);
  t.is(host.resolvConf, stubHost.resolvConf!);
  t.true(host.hosts.includes('127.0.1.1\tabc123 web'));
  const hostWithHosts = renderContainerFiles({ kind: 'host' }, identity, plainHost);
  t.true(hostWithHosts.hosts.startsWith('127.0.0.1 localhost\n192.0.2.10 buildhost\n'));
  const none = renderContainerFiles({ kind: 'none' }, { hostname: 'web', name: 'web' }, plainHost);
  t.false(none.resolvConf.includes('nameserver'));
  t.true(none.hosts.includes('127.0.1.1\tweb\n'));
  t.false(none.hosts.includes('host.containers.internal'));
});

test('containerFiles: container:NAME follows the joined container\'s mode', (t) => {
  const files = renderContainerFiles({ kind: 'container', container: 'db' }, identity, plainHost, parseNetworkOption('slirp4netns'));
  t.true(files.resolvConf.includes('nameserver 10.0.2.3'));
});

// ---- slirp4netns command line

const allFeatures = parseSlirpHelp(
  '/usr/bin/slirp4netns',
  '--configure --exit-fd --ready-fd --mtu --enable-ipv6 --api-socket --cidr --disable-host-loopback --netns-type --userns-path --enable-sandbox --enable-seccomp',
  'slirp4netns version 1.2.0\ncommit: x\n',
);

test('parseSlirpHelp: features and version', (t) => {
  t.is(allFeatures.version, '1.2.0');
  t.true(allFeatures.sandbox && allFeatures.seccomp && allFeatures.apiSocket && allFeatures.disableHostLoopback);
  const old = parseSlirpHelp('/x', '--configure --exit-fd --ready-fd --mtu --api-socket', '');
  t.false(old.sandbox || old.seccomp || old.cidr);
});

test('slirp4netnsArgs: defaults, sandbox where supported, the pid form', (t) => {
  const args = slirp4netnsArgs({ features: allFeatures, options: { ...DEFAULT_SLIRP_OPTIONS }, pid: 1234, apiSocket: '/run/x.sock' });
  t.deepEqual(args, [
    '--configure', '--mtu=65520', '--exit-fd=3', '--ready-fd=4', '--api-socket=/run/x.sock',
    '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp', '1234', 'tap0',
  ]);
  const allow = slirp4netnsArgs({ features: { ...allFeatures, sandbox: false, seccomp: false }, options: { ...DEFAULT_SLIRP_OPTIONS, allowHostLoopback: true, cidr: '10.7.0.0/24', enableIpv6: true }, pid: 1, apiSocket: '/s' });
  t.false(allow.includes('--disable-host-loopback'));
  t.false(allow.includes('--enable-sandbox'));
  t.true(allow.includes('--cidr=10.7.0.0/24'));
  t.true(allow.includes('--enable-ipv6'));
  t.throws(() => slirp4netnsArgs({ features: { ...allFeatures, disableHostLoopback: false }, options: { ...DEFAULT_SLIRP_OPTIONS }, pid: 1, apiSocket: '/s' }), { message: /cannot disable access to the host's loopback/ });
});

test('apiSocketPath: fits in sun_path, falling back to a short private directory', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nook-sock-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.is(apiSocketPath(join(root, 'c1'), root), join(root, 'c1', 'slirp4netns.sock'));
  const deep = join(root, 'containers', 'a'.repeat(64));
  const inRunRoot = apiSocketPath(deep, root);
  t.is(inRunRoot.startsWith(join(root, 'net') + '/'), true);
  t.true(Buffer.byteLength(inRunRoot) <= 107);
  t.is(statSync(join(root, 'net')).mode & 0o777, 0o700);
  const deepRoot = join(root, 'r'.repeat(80));
  const fallback = apiSocketPath(join(deepRoot, 'containers', 'b'.repeat(64)), deepRoot);
  t.true(fallback.startsWith(join(tmpdir(), `nook-net-${process.getuid!()}`)));
  t.true(Buffer.byteLength(fallback) <= 107);
  // stable: the same container gets the same path
  t.is(apiSocketPath(join(deepRoot, 'containers', 'b'.repeat(64)), deepRoot), fallback);
});

test('pastaArgs: only the published ports, no forwarding towards the host, the pid last', (t) => {
  const ports = parsePublishList(['127.0.0.1:8080:80', '5353:53/udp']);
  t.deepEqual(pastaArgs([], ports, '/r/pasta.pid', '/r/pasta.log', 42), [
    '--config-net', '--foreground', '--quiet', '--pid', '/r/pasta.pid', '--log-file', '/r/pasta.log',
    '-t', '127.0.0.1/8080:80', '-u', '5353:53', '-T', 'none', '-U', 'none', '--no-map-gw', '42',
  ]);
  const none = pastaArgs(['--ipv4-only'], [], '/p', '/l', 7);
  t.deepEqual(none.slice(7), ['-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '--no-map-gw', '--ipv4-only', '7']);
  // the user's own forwarding choices win
  const own = pastaArgs(['-T', '5432'], [], '/p', '/l', 7);
  t.false(own.slice(0, -3).includes('-T'));
  t.deepEqual(own.slice(-3), ['-T', '5432', '7']);
});
