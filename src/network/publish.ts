/**
 * Published ports (`-p`): parsing, and the checks that must fail before a
 * container starts rather than after (a port already taken, or one below
 * net.ipv4.ip_unprivileged_port_start, which an unprivileged slirp4netns cannot bind).
 *
 *   -p 8080:80            host 0.0.0.0:8080 -> container :80, tcp
 *   -p 127.0.0.1:8080:80  host 127.0.0.1 only
 *   -p 5353:53/udp        udp
 *   -p 80                 a free host port chosen at start (see resolvePorts)
 *   -p 127.0.0.1::80      the same, on one address
 *   -p 8080-8081:80-81    ranges of equal length
 */
import { createServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { NookError, errnoCode } from '../lib/errors.js';

export type PortProtocol = 'tcp' | 'udp';

export interface PortMapping {
  /** host address to listen on; 0.0.0.0 for all */
  hostIp: string;
  /** 0 until resolvePorts picked a free one */
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

const DEFAULT_UNPRIVILEGED_PORT_START = 1024;

/** One `-p` value; a range gives several mappings. */
export function parsePublish(value: string): PortMapping[] {
  let rest = value.trim();
  let protocol: PortProtocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const proto = rest.slice(slash + 1).toLowerCase();
    if (proto !== 'tcp' && proto !== 'udp') throw new NookError(`-p ${value}: the protocol must be tcp or udp, not "${proto}"`);
    protocol = proto;
    rest = rest.slice(0, slash);
  }

  let hostIp = '0.0.0.0';
  let hostPart = '';
  let containerPart: string;
  if (rest.startsWith('[')) {
    throw new NookError(`-p ${value}: IPv6 host addresses are not supported; publish on an IPv4 address`);
  }
  const parts = rest.split(':');
  if (parts.length === 1) {
    containerPart = parts[0]!;
  } else if (parts.length === 2) {
    [hostPart, containerPart] = parts as [string, string];
  } else if (parts.length === 3) {
    const [ip, hp, cp] = parts as [string, string, string];
    if (ip !== '') hostIp = parseIpv4(ip, value);
    hostPart = hp;
    containerPart = cp;
  } else {
    throw new NookError(`-p ${value}: expected [ip:][hostPort:]containerPort[/tcp|/udp]`);
  }

  const containerPorts = parsePortRange(containerPart, value, 'container');
  if (hostPart === '') {
    return containerPorts.map((containerPort) => ({ hostIp, hostPort: 0, containerPort, protocol }));
  }
  const hostPorts = parsePortRange(hostPart, value, 'host');
  if (hostPorts.length !== containerPorts.length) {
    throw new NookError(`-p ${value}: the host range has ${hostPorts.length} ports and the container range ${containerPorts.length}`);
  }
  return hostPorts.map((hostPort, i) => ({ hostIp, hostPort, containerPort: containerPorts[i]!, protocol }));
}

/** All `-p` values of a command line, refusing the same host port twice. */
export function parsePublishList(values: readonly string[]): PortMapping[] {
  const all = values.flatMap(parsePublish);
  const seen = new Set<string>();
  for (const p of all) {
    if (p.hostPort === 0) continue;
    const key = `${p.hostPort}/${p.protocol}`;
    if (seen.has(key)) throw new NookError(`host port ${key} is published twice`);
    seen.add(key);
  }
  return all;
}

function parsePortRange(text: string, value: string, which: string): number[] {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!match) throw new NookError(`-p ${value}: "${text}" is not a ${which} port or range`);
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  for (const port of [first, last]) {
    if (port < 1 || port > 65535) throw new NookError(`-p ${value}: ${which} port ${port} is outside 1-65535`);
  }
  if (last < first) throw new NookError(`-p ${value}: the ${which} range ${text} is reversed`);
  const ports: number[] = [];
  for (let p = first; p <= last; p++) ports.push(p);
  return ports;
}

function parseIpv4(text: string, value: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!match || match.slice(1).some((o) => Number(o) > 255)) throw new NookError(`-p ${value}: "${text}" is not an IPv4 address`);
  return match.slice(1).map(Number).join('.');
}

/** `0.0.0.0:8080->80/tcp`, as podman ps prints it. */
export function formatPort(p: PortMapping): string {
  return `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.protocol}`;
}

export async function readUnprivilegedPortStart(procSys = '/proc/sys'): Promise<number> {
  try {
    const value = Number((await readFile(`${procSys}/net/ipv4/ip_unprivileged_port_start`, 'utf8')).trim());
    return Number.isInteger(value) ? value : DEFAULT_UNPRIVILEGED_PORT_START;
  } catch {
    return DEFAULT_UNPRIVILEGED_PORT_START;
  }
}

export interface PortCheckOptions {
  /** defaults to the current process's uid: root may bind any port */
  uid?: number;
  /** defaults to reading /proc/sys/net/ipv4/ip_unprivileged_port_start */
  unprivilegedPortStart?: number;
}

/**
 * Binds each host port for a moment and lets it go, so that a taken or
 * privileged port is reported with a one-line reason before any namespace
 * exists. Ports given as 0 get a free port chosen here. There is a window
 * between this check and slirp4netns binding the port; a port lost in it is
 * reported by attachNetwork, later but still clearly.
 */
export async function checkPortsAvailable(ports: readonly PortMapping[], options: PortCheckOptions = {}): Promise<PortMapping[]> {
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const start = options.unprivilegedPortStart ?? (await readUnprivilegedPortStart());
  const resolved: PortMapping[] = [];
  for (const port of ports) {
    if (uid !== 0 && port.hostPort !== 0 && port.hostPort < start) {
      throw new NookError(
        `cannot publish host port ${port.hostPort}/${port.protocol}: ports below ${start} (net.ipv4.ip_unprivileged_port_start) need root; publish a higher port (-p ${port.hostPort + 8000 > 65535 ? 8080 : port.hostPort + 8000}:${port.containerPort}) or lower that sysctl`,
      );
    }
    const hostPort = await probeBind(port);
    resolved.push({ ...port, hostPort });
  }
  return resolved;
}

async function probeBind(port: PortMapping): Promise<number> {
  try {
    return port.protocol === 'tcp' ? await probeTcp(port.hostIp, port.hostPort) : await probeUdp(port.hostIp, port.hostPort);
  } catch (error) {
    const code = errnoCode(error);
    const where = `${port.hostIp}:${port.hostPort}/${port.protocol}`;
    if (code === 'EADDRINUSE') throw new NookError(`cannot publish ${where}: the port is already in use on the host`, { cause: error });
    if (code === 'EADDRNOTAVAIL') throw new NookError(`cannot publish ${where}: ${port.hostIp} is not an address of this host`, { cause: error });
    if (code === 'EACCES') throw new NookError(`cannot publish ${where}: permission denied binding the port`, { cause: error });
    throw new NookError(`cannot publish ${where}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

function probeTcp(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    // exclusive: no sharing with a cluster primary; Node sets SO_REUSEADDR, which (as in slirp4netns) still refuses a listening port.
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

// node:dgram is loaded here only: most containers publish no UDP port, and every start would pay for it.
async function probeUdp(host: string, port: number): Promise<number> {
  const { createSocket } = await import('node:dgram');
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: host, port, exclusive: true }, () => {
      const bound = socket.address().port;
      socket.close(() => resolve(bound));
    });
  });
}
