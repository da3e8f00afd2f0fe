/**
 * What a user asks of a container, parsed and validated once from the
 * command line (podman's flags and meanings); everything below trusts it.
 */
export interface VolumeOption {
  source: string;
  destination: string;
  readonly: boolean;
}

export interface ContainerOptions {
  image: string;
  /** argv after the image name; replaces the image's Cmd */
  command: string[];
  /** --entrypoint: replaces the image's Entrypoint ('' clears it) */
  entrypoint?: string[];
  name?: string;
  env: string[];
  envFiles: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  volumes: VolumeOption[];
  tmpfs: string[];
  readOnly: boolean;
  ulimits: string[];
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  securityOpt: string[];
  network?: string;
  publish: string[];
  init: boolean;
  tty: boolean;
  interactive: boolean;
  detach: boolean;
  rm: boolean;
  userns?: string;
  storageDriver?: string;
  /** --pull: missing (default), always, never */
  pull?: 'missing' | 'always' | 'never';
  /** --memory, --cpus, --pids-limit...: OCI linux.resources (src/cgroups/resources.ts) */
  resources?: import('../cgroups/resources.js').OciResources;
  /** --cgroups: enabled (default) or disabled */
  cgroups?: string;
  /** --cgroup-manager: systemd, cgroupfs, none (default: the host's choice, see nook info) */
  cgroupManager?: string;
  /** --cgroup-parent (cgroupfs): the cgroup containers' cgroups are made under */
  cgroupParent?: string;
}
