/**
 * What each network mode means for the container's namespaces, as entries of
 * the executor plan.
 *
 * A network namespace belongs to the user namespace that created it, and
 * setns() into it needs CAP_SYS_ADMIN there. A rootless container has its
 * capabilities only in its own user namespace, so joining another
 * container's network namespace (container:NAME) means joining that
 * container's user namespace too: the two then share ids as well as the
 * network, as with podman's shared rootless namespace.
 */
import type { NamespacePlan } from '../runtime/plan.js';
import type { NetworkMode } from './mode.js';

export interface NetworkNamespaceChoice {
  /** the `net` entry for ExecutorPlan.namespaces; null: stay in the host's network namespace */
  net: NamespacePlan | null;
  /** container:NAME: the user namespace to join (ExecutorPlan.user = {mode:'join', path}) instead of creating one */
  joinUserNamespace: string | null;
  /**
   * Whether the container may mount a fresh sysfs. The kernel allows it only
   * in a network namespace owned by the container's user namespace; with
   * `host` the container must bind-mount the host's /sys (read-only) instead.
   */
  sysfsMountable: boolean;
  /** Whether attachNetwork has work to do after the executor reports the pid. */
  needsAttach: boolean;
}

/** `joined` is the pid of the container named by container:NAME (its monitor's child, PID 1 of that container). */
export function namespacesFor(mode: NetworkMode, joined?: { pid: number }): NetworkNamespaceChoice {
  switch (mode.kind) {
    case 'slirp4netns':
    case 'pasta':
      return { net: { type: 'net' }, joinUserNamespace: null, sysfsMountable: true, needsAttach: true };
    case 'none':
      // The executor brings `lo` up itself (the plan's loopback-up op): nothing to attach.
      return { net: { type: 'net' }, joinUserNamespace: null, sysfsMountable: true, needsAttach: false };
    case 'host':
      return { net: null, joinUserNamespace: null, sysfsMountable: false, needsAttach: false };
    case 'container':
      if (!joined) throw new Error(`namespacesFor(container:${mode.container}) needs the pid of that container`);
      return {
        net: { type: 'net', path: `/proc/${joined.pid}/ns/net` },
        joinUserNamespace: `/proc/${joined.pid}/ns/user`,
        sysfsMountable: true,
        needsAttach: false,
      };
  }
}
