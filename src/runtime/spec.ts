/**
 * The OCI runtime specification's config.json (the subset nook reads and
 * writes), as runc and crun read it. `nook run` writes one per container; the
 * OCI runtime CLI (nook-runtime) reads bundles made by others.
 * https://github.com/opencontainers/runtime-spec/blob/main/config.md
 */
export interface OciSpec {
  ociVersion: string;
  process?: OciProcess;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: OciMount[];
  hooks?: Partial<Record<'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop', OciHook[]>>;
  annotations?: Record<string, string>;
  linux?: OciLinux;
}

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: {
    bounding?: string[];
    effective?: string[];
    inheritable?: string[];
    permitted?: string[];
    ambient?: string[];
  };
  rlimits?: { type: string; hard: number; soft: number }[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
}

export interface OciMount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
}

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciNamespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';
  path?: string;
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

export interface OciLinux {
  namespaces?: OciNamespace[];
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
  sysctl?: Record<string, string>;
  resources?: Record<string, unknown>;
  cgroupsPath?: string;
  seccomp?: OciSeccomp;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  devices?: { path: string; type: string; major?: number; minor?: number; fileMode?: number; uid?: number; gid?: number }[];
}
