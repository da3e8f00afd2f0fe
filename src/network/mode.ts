/**
 * The `--network` value, parsed once into a typed mode. Everything else in
 * src/network works from a NetworkMode, never from the raw string.
 *
 *   slirp4netns[:allow_host_loopback=true,cidr=10.0.2.0/24,mtu=65520,enable_ipv6=true,port_handler=rootlesskit|slirp4netns]
 *   pasta[:OPTION,OPTION...]   extra options handed to pasta as they are
 *   none                       a new network namespace with only `lo`
 *   host                       no network namespace: the host's interfaces
 *   container:NAME             the network namespace of another container
 */
import { NookError } from '../lib/errors.js';

export interface Slirp4netnsOptions {
  /** Let the container reach the host's 127.0.0.1 as 10.0.2.2 (off by default: it exposes host-only services). */
  allowHostLoopback: boolean;
  /** The virtual network; the container gets .100, the gateway (host) .2, DNS .3. */
  cidr: string;
  mtu: number;
  enableIpv6: boolean;
  /**
   * Who forwards published TCP ports (podman's names): `rootlesskit`, the
   * default, is the executor's own forwarder (src/network/port-forwards.ts:
   * splice() in the kernel, the server sees the container's own address);
   * `slirp4netns` is slirp4netns's add_hostfwd (through libslirp, slower, but
   * remote clients keep their address). UDP always goes through slirp4netns.
   */
  portHandler: 'rootlesskit' | 'slirp4netns';
}

export type NetworkMode =
  | { kind: 'slirp4netns'; options: Slirp4netnsOptions }
  | { kind: 'pasta'; args: string[] }
  | { kind: 'none' }
  | { kind: 'host' }
  | { kind: 'container'; container: string };

export const DEFAULT_SLIRP_OPTIONS: Readonly<Slirp4netnsOptions> = Object.freeze({
  allowHostLoopback: false,
  cidr: '10.0.2.0/24',
  // slirp4netns's maximum is 65521; a large MTU is what makes its throughput tolerable (podman uses the same).
  mtu: 65520,
  enableIpv6: false,
  portHandler: 'rootlesskit',
});

/** Parses a `--network` value. An empty value means "the default" and is the caller's business. */
export function parseNetworkOption(value: string): NetworkMode {
  const trimmed = value.trim();
  const colon = trimmed.indexOf(':');
  const name = colon < 0 ? trimmed : trimmed.slice(0, colon);
  const rest = colon < 0 ? undefined : trimmed.slice(colon + 1);
  switch (name) {
    case 'slirp4netns':
      return { kind: 'slirp4netns', options: parseSlirpOptions(rest ?? '') };
    case 'pasta':
      return { kind: 'pasta', args: rest ? rest.split(',').filter((a) => a !== '') : [] };
    case 'none':
    case 'host':
      if (rest !== undefined) throw new NookError(`--network ${name} takes no options`);
      return { kind: name };
    case 'container':
      if (!rest) throw new NookError('--network container: needs a container name or id (container:NAME)');
      return { kind: 'container', container: rest };
    case 'bridge':
    case 'private':
      throw new NookError(`--network ${name} is not available rootless: use slirp4netns, pasta, none, host or container:NAME`);
    default:
      throw new NookError(`unknown --network mode "${value}": use slirp4netns, pasta, none, host or container:NAME`);
  }
}

function parseSlirpOptions(text: string): Slirp4netnsOptions {
  const options: Slirp4netnsOptions = { ...DEFAULT_SLIRP_OPTIONS };
  for (const item of text.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const val = eq < 0 ? '' : item.slice(eq + 1);
    switch (key) {
      case 'allow_host_loopback':
        options.allowHostLoopback = parseBool(key, val);
        break;
      case 'enable_ipv6':
        options.enableIpv6 = parseBool(key, val);
        break;
      case 'cidr':
        parseCidr(val);
        options.cidr = val;
        break;
      case 'mtu': {
        const mtu = Number(val);
        if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65521) throw new NookError(`slirp4netns mtu must be an integer from 68 to 65521, not "${val}"`);
        options.mtu = mtu;
        break;
      }
      case 'port_handler':
        if (val !== 'rootlesskit' && val !== 'slirp4netns') throw new NookError(`slirp4netns port_handler must be rootlesskit (the default: nook's own forwarder) or slirp4netns, not "${val}"`);
        options.portHandler = val;
        break;
      default:
        throw new NookError(`unknown slirp4netns option "${key}": known are allow_host_loopback, cidr, mtu, enable_ipv6, port_handler`);
    }
  }
  return options;
}

function parseBool(key: string, val: string): boolean {
  if (val === '' || val === 'true') return true;
  if (val === 'false') return false;
  throw new NookError(`slirp4netns option ${key} must be true or false, not "${val}"`);
}

export interface Ipv4Cidr {
  /** network address as a 32-bit unsigned number */
  network: number;
  prefix: number;
}

/** slirp4netns accepts prefixes up to /25: it puts the container at network+100. */
export function parseCidr(text: string): Ipv4Cidr {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = match ? match.slice(1, 5).map(Number) : [];
  const prefix = match ? Number(match[5]) : NaN;
  if (!match || octets.some((o) => o > 255) || prefix < 1 || prefix > 25) {
    throw new NookError(`slirp4netns cidr must be an IPv4 network with a prefix from /1 to /25 (e.g. 10.0.2.0/24), not "${text}"`);
  }
  const address = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (address & mask) >>> 0, prefix };
}

function ipv4ToString(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/** The fixed addresses slirp4netns uses inside a network (its --cidr). */
export interface SlirpAddresses {
  /** the host, as seen from the container (and the default gateway) */
  gateway: string;
  /** slirp4netns's DNS forwarder */
  dns: string;
  /** the container's own address with --configure */
  guest: string;
  prefix: number;
}

export function slirpAddresses(cidr: string): SlirpAddresses {
  const { network, prefix } = parseCidr(cidr);
  return {
    gateway: ipv4ToString(network + 2),
    dns: ipv4ToString(network + 3),
    guest: ipv4ToString(network + 100),
    prefix,
  };
}

/** The `--network` value as a user would type it back (for inspect and ps). */
export function formatNetworkMode(mode: NetworkMode): string {
  switch (mode.kind) {
    case 'slirp4netns': {
      const parts: string[] = [];
      const o = mode.options;
      if (o.allowHostLoopback) parts.push('allow_host_loopback=true');
      if (o.cidr !== DEFAULT_SLIRP_OPTIONS.cidr) parts.push(`cidr=${o.cidr}`);
      if (o.mtu !== DEFAULT_SLIRP_OPTIONS.mtu) parts.push(`mtu=${o.mtu}`);
      if (o.enableIpv6) parts.push('enable_ipv6=true');
      if (o.portHandler !== DEFAULT_SLIRP_OPTIONS.portHandler) parts.push(`port_handler=${o.portHandler}`);
      return parts.length ? `slirp4netns:${parts.join(',')}` : 'slirp4netns';
    }
    case 'pasta':
      return mode.args.length ? `pasta:${mode.args.join(',')}` : 'pasta';
    case 'container':
      return `container:${mode.container}`;
    default:
      return mode.kind;
  }
}
