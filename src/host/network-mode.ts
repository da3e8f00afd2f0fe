/**
 * The default network mode: slirp4netns (a user-mode TCP/IP stack giving the
 * container outbound access and port forwarding) needs its binary and a tap
 * device from /dev/net/tun; without either, containers get only a loopback
 * interface (`--network none`).
 */
import { realHostView, type DeviceAccess, type HostView } from './view.js';

export type DefaultNetworkMode = 'slirp4netns' | 'none';

export interface NetworkModeChoice {
  mode: DefaultNetworkMode;
  reason: string;
  slirp4netnsPath: string | null;
}

export interface NetworkFacts {
  slirp4netns: string | null;
  devNetTun: DeviceAccess;
}

export function decideNetworkMode(facts: NetworkFacts): NetworkModeChoice {
  if (!facts.slirp4netns) return { mode: 'none', reason: 'slirp4netns is not installed: containers get only a loopback interface', slirp4netnsPath: null };
  if (!facts.devNetTun.usable) {
    return { mode: 'none', reason: `/dev/net/tun cannot be opened (${facts.devNetTun.code}): slirp4netns cannot create its tap device`, slirp4netnsPath: facts.slirp4netns };
  }
  return { mode: 'slirp4netns', reason: `${facts.slirp4netns} and /dev/net/tun are usable`, slirp4netnsPath: facts.slirp4netns };
}

export async function readNetworkFacts(view: HostView): Promise<NetworkFacts> {
  const [slirp4netns, devNetTun] = await Promise.all([view.which('slirp4netns'), view.openDevice('/dev/net/tun')]);
  return { slirp4netns, devNetTun };
}

export async function chooseNetworkMode(options: { view?: HostView } = {}): Promise<NetworkModeChoice> {
  return decideNetworkMode(await readNetworkFacts(options.view ?? realHostView()));
}
