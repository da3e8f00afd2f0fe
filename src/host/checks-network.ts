/**
 * Doctor checks about networking: slirp4netns and the tap device it needs.
 */
import { ok, problem, type Check } from './check.js';
import { installCommand } from './distribution.js';

const lost = 'the default network: containers get only a loopback interface (--network none), no outbound access, no -p port forwarding';

export const checkSlirp4netns: Check = async (facts) => {
  const network = await facts.network();
  if (!network.slirp4netns) {
    return problem('warn', 'slirp4netns', 'slirp4netns', 'slirp4netns is not installed', lost, installCommand(await facts.distribution(), 'slirp4netns'));
  }
  return ok('slirp4netns', 'slirp4netns', network.slirp4netns);
};

export const checkDevNetTun: Check = async (facts) => {
  const network = await facts.network();
  if (network.devNetTun.usable) return ok('dev-net-tun', '/dev/net/tun', 'usable');
  const code = network.devNetTun.code;
  const fix =
    code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO'
      ? 'sudo modprobe tun   # no module: sudo mkdir -p /dev/net && sudo mknod -m 0666 /dev/net/tun c 10 200; in a container: --device /dev/net/tun'
      : 'sudo chmod 0666 /dev/net/tun   # its usual mode';
  return problem('warn', 'dev-net-tun', '/dev/net/tun', `/dev/net/tun cannot be opened (${code})`, lost, fix);
};
