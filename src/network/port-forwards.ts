/**
 * Which published ports the executor forwards itself, as entries of the
 * executor plan (ExecutorPlan.portForwards), and which are left to the
 * network helper.
 *
 * With slirp4netns, a TCP port forwarded by slirp4netns (add_hostfwd) sends
 * every byte through libslirp's TCP stack in user space. The executor's
 * setup process instead accepts on the host and connects from inside the
 * container's network namespace to the container's own address, relaying
 * with splice() (rootlesskit's "builtin" port driver, podman's rootlessport):
 * the data stays in the kernel. UDP stays with slirp4netns, and so does TCP
 * with `port_handler=slirp4netns`; pasta forwards its ports itself (it
 * splices local connections already).
 */
import type { PortForward } from '../runtime/plan.js';
import { slirpAddresses, type NetworkMode } from './mode.js';
import type { PortMapping } from './publish.js';

export function executorPortForwards(mode: NetworkMode, ports: readonly PortMapping[]): PortForward[] {
  if (mode.kind !== 'slirp4netns' || mode.options.portHandler !== 'rootlesskit') return [];
  const containerIp = slirpAddresses(mode.options.cidr).guest;
  return ports
    .filter((p) => p.protocol === 'tcp')
    .map((p) => ({ hostIp: p.hostIp, hostPort: p.hostPort, containerIp, containerPort: p.containerPort }));
}

/** The ports a helper must still forward: those the executor does not. */
export function portsLeftToHelper(ports: readonly PortMapping[], forwards: readonly PortForward[]): PortMapping[] {
  return ports.filter((p) => !(p.protocol === 'tcp' && forwards.some((f) => f.hostIp === p.hostIp && f.hostPort === p.hostPort)));
}
