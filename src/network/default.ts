/**
 * The network mode when `--network` is not given: what the doctor's check
 * (src/host/network-mode.ts) finds usable on this host: slirp4netns when its
 * binary and /dev/net/tun work, else none, with the reason, so that `nook run`
 * can say why a container has no network.
 */
import { DEFAULT_SLIRP_OPTIONS, parseNetworkOption, type NetworkMode } from './mode.js';

export interface NetworkModeDecision {
  mode: NetworkMode;
  /** why this mode; for --debug and `nook info` */
  reason: string;
  /** true when the user asked for it with --network */
  explicit: boolean;
}

export async function resolveNetworkMode(value: string | undefined): Promise<NetworkModeDecision> {
  if (value !== undefined && value.trim() !== '' && value.trim() !== 'default') {
    return { mode: parseNetworkOption(value), reason: `--network ${value}`, explicit: true };
  }
  const { chooseNetworkMode } = await import('../host/network-mode.js');
  const choice = await chooseNetworkMode();
  const mode: NetworkMode = choice.mode === 'slirp4netns' ? { kind: 'slirp4netns', options: { ...DEFAULT_SLIRP_OPTIONS } } : { kind: 'none' };
  return { mode, reason: choice.reason, explicit: false };
}
