/**
 * `nook-runtime features`: what this runtime supports, in the form of the
 * runtime spec's features.md (as `runc features` prints it), so that engines
 * can check before they ask.
 */
import { CAPABILITY_NAMES } from '../../security/capabilities.js';
import { SCMP_ARCH } from '../../security/seccomp/arch.js';
import { SECCOMP_ACTIONS, SECCOMP_FILTER_FLAGS, SECCOMP_OPERATORS } from '../../security/seccomp/oci.js';
import { OCI_VERSION } from './state.js';

const MOUNT_OPTIONS = [
  'async', 'atime', 'bind', 'dev', 'diratime', 'dirsync', 'exec', 'mand', 'noatime', 'nodev', 'nodiratime', 'noexec',
  'nomand', 'norelatime', 'nostrictatime', 'nosuid', 'nosymfollow', 'private', 'rbind', 'relatime', 'remount', 'ro',
  'rprivate', 'rshared', 'rslave', 'runbindable', 'rw', 'shared', 'slave', 'strictatime', 'suid', 'sync', 'unbindable',
];

export function runtimeFeatures(version: string): unknown {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: MOUNT_OPTIONS,
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'],
      capabilities: CAPABILITY_NAMES.map((name) => `CAP_${name}`),
      cgroup: { v1: false, v2: true, systemd: true, systemdUser: true },
      seccomp: {
        enabled: true,
        // SCMP_ACT_NOTIFY needs a seccomp agent, which nook does not support.
        actions: SECCOMP_ACTIONS.filter((action) => action !== 'SCMP_ACT_NOTIFY'),
        operators: [...SECCOMP_OPERATORS],
        archs: Object.values(SCMP_ARCH),
        knownFlags: Object.keys(SECCOMP_FILTER_FLAGS),
        // the filter is loaded with prctl(PR_SET_SECCOMP), which takes no flags
        supportedFlags: [],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
    },
    annotations: {
      'org.opencontainers.runtime.name': 'nook-runtime',
      'org.opencontainers.runtime.version': version,
      'io.github.seccomp.libseccomp.version': 'none (filters compiled by nook)',
    },
  };
}
