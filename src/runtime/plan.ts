/**
 * The executor plan: everything the single-threaded helper (helpers/nook-exec.c)
 * needs to turn itself into a container, computed in TypeScript as plain data.
 *
 * Why a plan: a Node process is multi-threaded, and unshare(CLONE_NEWUSER) or
 * setns() into a user namespace fail with EINVAL there. So namespace entry and
 * the steps that must follow it happen in a small C program. Every decision
 * (which namespaces, which mounts in which order, which capabilities, which
 * seccomp program) is made here; the executor only carries the list out, in
 * order, and reports. `nook run --trace` prints each step as it happens, and
 * `nook run --dry-run` (debug) prints the plan itself.
 *
 * Process layout the executor builds (helpers/nook-exec.c has the details):
 *   monitor: the executor itself. It never enters a namespace, so it keeps the
 *     host's root and mount table: it writes the setup process's id maps
 *     (newuidmap/newgidmap, or /proc/PID/uid_map directly), forwards signals
 *     to the container, writes logs / pid file / exit file for detached
 *     containers, reports the exit, and runs `monitor.onExit` on the host, as
 *     podman's conmon does. PR_SET_CHILD_SUBREAPER.
 *   setup process (the monitor's child): joins `joinCgroup`, creates/joins the
 *     user namespace, then the other namespaces in plan order except the pid
 *     namespace, runs `outerOps` (mount daemons started by spawn-mount are its
 *     children), then creates/joins the pid namespace (last, so that those
 *     daemons are not its PID 1) and forks the container. It stays as the
 *     container's parent: reaps it, reports its status, stops the daemons,
 *     and relays `portForwards` (listeners the monitor made on the host).
 *   container process (PID 1 when the pid namespace is new): when the plan
 *     creates a mount namespace it first takes its own copy of it
 *     (unshare(CLONE_NEWNS)), so pivot_root changes only the container's view
 *     and not the mount daemons'; then `innerOps` (mounts, pivot_root, ...),
 *     its terminal (process.terminal: opened in its own devpts, the
 *     controlling side sent to the monitor), the process settings below, and
 *     execve(`process.args`).
 *   Each process dies with its parent (PR_SET_PDEATHSIG SIGKILL), except in
 *   monitor mode 'handoff', where the container is left to the caller.
 *
 * Wire format (src/runtime/plan-encoding.ts): fd 4 of the executor carries
 * "<length>\n" and then the plan as NUL-terminated tokens; it stays open as
 * the control fd when `hold` is set. fd 3 carries the status lines.
 */

export type NamespaceType = 'user' | 'mnt' | 'pid' | 'uts' | 'ipc' | 'net' | 'cgroup';

export interface IdMapEntry {
  /** first id inside the namespace */
  inside: number;
  /** first id outside (on the host) */
  outside: number;
  count: number;
}

export type UserNamespacePlan =
  | { mode: 'none' }
  /** setns() into an existing one (exec into a running container). */
  | { mode: 'join'; path: string }
  | {
      mode: 'new';
      /** uid_map lines; written with `newuidmap` when uidHelper is set, else directly. */
      uidMap: IdMapEntry[];
      gidMap: IdMapEntry[];
      /** absolute paths of newuidmap/newgidmap, or null to write /proc/PID/{uid,gid}_map directly (single mapping). */
      uidHelper: string | null;
      gidHelper: string | null;
      /** "deny" is required before writing gid_map directly without newgidmap. */
      setgroups: 'allow' | 'deny';
    };

export interface NamespacePlan {
  type: Exclude<NamespaceType, 'user'>;
  /** join this namespace (e.g. /proc/PID/ns/net); absent: create a new one. */
  path?: string;
}

/**
 * Mount-phase operations. Paths starting with "/" are host paths (before
 * pivot_root) unless `inRoot` is set: then `target` is a path inside the
 * container's root (the last `set-root`), resolved without following any
 * symlink out of it (openat2 RESOLVE_IN_ROOT), and missing components are
 * created (`ensure` says whether the last one is a directory or a file).
 */
export type PlanOp =
  | { op: 'set-root'; path: string }
  | {
      op: 'mount';
      source: string;
      target: string;
      fstype: string;
      /** MS_* flags as a number (see ./mountflags.ts) */
      flags: number;
      data: string;
      inRoot: boolean;
      ensure: 'dir' | 'file' | 'none';
      /** For MS_BIND|MS_REMOUNT: keep the flags the kernel locked (nosuid, nodev, noexec...), else EPERM in a user namespace. */
      keepLockedFlags?: boolean;
      /** A failure is reported as a trace step and skipped (e.g. cgroup2 on a cgroup v1 host). */
      optional?: boolean;
    }
  /** Hide a path (after pivot-root): /dev/null bound over a file, an empty read-only tmpfs over a directory; an absent path is skipped. */
  | { op: 'mask'; path: string }
  /** Make a path read-only (after pivot-root): bind it onto itself and remount ro, keeping locked flags; an absent path is skipped. */
  | { op: 'readonly'; path: string }
  | { op: 'mkdir'; path: string; mode: number; inRoot: boolean }
  | { op: 'symlink'; target: string; path: string; inRoot: boolean }
  | { op: 'write-file'; path: string; content: string; inRoot: boolean }
  /**
   * Start a mount daemon that must live in this mount namespace (fuse-overlayfs
   * with -f), with PR_SET_PDEATHSIG so it never outlives the monitor, and wait
   * until `target` is a mount point (or the daemon exits: error).
   */
  | { op: 'spawn-mount'; args: string[]; target: string } /* outerOps only: the daemon is the setup process's child */
  | { op: 'chdir'; path: string }
  /** pivot_root(newRoot, newRoot) then umount2(".", MNT_DETACH): the old root is gone. */
  | { op: 'pivot-root'; path: string }
  | { op: 'umount'; target: string; flags: number }
  | { op: 'sethostname'; name: string }
  /** Bring the loopback device of a new network namespace up (an ioctl: no `ip` process). */
  | { op: 'loopback-up' }
  /**
   * innerOps only, needs `hold`: the container process stops here, the
   * executor reports {"type":"paused"} and waits for one byte on the control
   * fd (ExecutorOptions.onPause). For the OCI hooks that run before pivot_root
   * (prestart, createRuntime, createContainer) and need the container's pid.
   */
  | { op: 'sync'; name: string };

export interface Rlimit {
  /** RLIMIT_* number */
  resource: number;
  soft: bigint | number;
  hard: bigint | number;
}

export interface CapabilitySets {
  /** bit masks (bit N = capability N) as decimal strings, since 41 bits exceed int32 and JSON has no bigint */
  bounding: string;
  effective: string;
  permitted: string;
  inheritable: string;
  ambient: string;
}

export interface ProcessPlan {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  /** null: leave capabilities as they are (e.g. helper processes). */
  capabilities: CapabilitySets | null;
  noNewPrivileges: boolean;
  /** A compiled seccomp program: sock_filter structs (8 bytes each) as hex, or null. */
  seccompFilter: string | null;
  rlimits: Rlimit[];
  oomScoreAdj: number | null;
  /** Look args[0] up in PATH (from env) inside the container, as execvp would. */
  searchPath: boolean;
  /**
   * The container gets a terminal of its own: after innerOps the container
   * process opens /dev/ptmx of its devpts instance (so `tty` names a
   * /dev/pts/N that exists inside), makes the terminal side its
   * stdin/stdout/stderr and controlling terminal (setsid, TIOCSCTTY), and
   * sends the controlling side to the monitor (see MonitorPlan).
   */
  terminal?: boolean;
  /** With `terminal`: its initial size; absent/null leaves the kernel's default (0x0). */
  consoleSize?: { rows: number; cols: number } | null;
  /** umask for the container's process; default 0o022 (as runc), null: leave nook's own. */
  umask?: number | null;
}

export interface MonitorPlan {
  /**
   * foreground: stdio is inherited, the monitor exits with the container's status.
   *   With a terminal: the monitor relays between its own stdin/stdout (the
   *   user's terminal, raw while it runs) and the container's terminal, and
   *   passes window size changes (SIGWINCH) on.
   * detached: the monitor setsid()s, the status pipe is closed once the container runs,
   *   stdout/stderr (or the terminal's output) go into `logPath` (k8s-file format,
   *   as podman's), and the exit status is written to `exitFile` before `onExit` runs.
   * handoff: the OCI runtime's create and exec -d. stdio is inherited; once the
   *   container process is created (hold) or has started, the monitor and the
   *   setup process exit and the container, which no longer dies with its
   *   parent, is reparented to the caller's subreaper (conmon,
   *   containerd-shim), which reaps it, or to init. No log, no exit file.
   */
  mode: 'foreground' | 'detached' | 'handoff';
  logPath?: string;
  exitFile?: string;
  pidFile?: string;
  onExit?: string[];
  /** Kill the container if the process that started the executor dies (foreground runs). */
  dieWithParent: boolean;
  /** With a terminal: pass its controlling side to this unix socket (OCI --console-socket) instead of relaying it. */
  consoleSocket?: string;
  /** Foreground with a terminal: copy the monitor's stdin to it (-i); else the container's terminal gets no input. */
  terminalStdin?: boolean;
}

/**
 * A published TCP port the executor forwards itself (rootlesskit's "builtin"
 * port driver, without its extra process): the monitor binds and listens on
 * hostIp:hostPort in the host's network namespace before the setup process
 * leaves it, so a taken port fails the start before anything runs; the setup
 * process inherits the listener and, once the container runs, accepts on it
 * and connects each client to containerIp:containerPort from inside the
 * container's network namespace, relaying both ways with splice().
 */
export interface PortForward {
  /** IPv4 address on the host (0.0.0.0: every address) */
  hostIp: string;
  hostPort: number;
  /** IPv4 address of the container in its own network namespace (slirp4netns's guest address) */
  containerIp: string;
  containerPort: number;
}

export interface ExecutorPlan {
  /** Report each kernel-level step as it is done ({"type":"step"} status lines). */
  trace: boolean;
  user: UserNamespacePlan;
  /** In this order; user namespace handling comes first regardless. */
  namespaces: NamespacePlan[];
  outerOps: PlanOp[];
  innerOps: PlanOp[];
  process: ProcessPlan;
  monitor: MonitorPlan;
  /**
   * Hold the container process before execve: the executor reports
   * {"type":"created","pid":N} and waits until nook writes one byte to the
   * control fd (fd 4), or exits if it is closed. Used to attach the network
   * and cgroups to a created container, and by the OCI runtime's create/start.
   */
  hold?: boolean;
  /**
   * With `hold`: the container process waits for one byte written into this
   * FIFO instead of on the control fd, so that the process that started the
   * executor may exit meanwhile (OCI create, then start; as runc's exec.fifo).
   * The monitor makes it (mkfifo, 0600) and opens it for reading on the
   * host, before any namespace; the container process inherits that end, so
   * writing into the FIFO fails with ENXIO once the container is gone.
   */
  startFifo?: string;
  /**
   * A cgroup.procs file the setup process writes itself into ("0") before it
   * creates any namespace, so the container starts in its cgroup (and a new
   * cgroup namespace is rooted there). The monitor stays outside it.
   */
  joinCgroup?: string;
  /**
   * The setup process reports {"type":"setup","pid":N} before it creates any
   * namespace (after joinCgroup) and waits for one byte on the control fd:
   * nook places it then, e.g. asks systemd to move it into a new scope, so
   * that the cgroup namespace is rooted at the container's cgroup.
   */
  holdBeforeNamespaces?: boolean;
  /**
   * The setup process watches its cgroup's memory.events (opened right after
   * joinCgroup / holdBeforeNamespaces) and reports whether the OOM killer
   * struck while the container ran: "oomKilled" in the exited status, " oom"
   * after the code in the exit file.
   */
  watchOom?: boolean;
  /**
   * TCP ports the executor publishes itself (see PortForward). Needs a
   * monitor that stays (not 'handoff') and a new network namespace: the
   * setup process connects from inside it.
   */
  portForwards?: PortForward[];
}

/**
 * Status messages the executor writes, one JSON object per line, on the status
 * fd (fd 3 of the executor):
 *   {"type":"step","text":"..."}          with trace on
 *   {"type":"paused","pid":N,"monitorPid":M} at a `sync` op, waiting for the control byte
 *   {"type":"setup","pid":N}               with `holdBeforeNamespaces`: the setup process waits for a byte
 *   {"type":"created","pid":N,"monitorPid":M} with `hold`: ready, waiting for the control byte
 *   {"type":"started","pid":N,"monitorPid":M} the container process has called execve
 *     successfully (pid: on the host); errors come before it, never after
 *   {"type":"error","step":"mount /proc","errno":"EPERM","message":"...","exitCode":125}
 *     exitCode: 125 (nook's), 126 (execve failed: cannot run), 127 (not found)
 *   {"type":"exited","code":N,"signal":S|null}  foreground only; code is 128+S when killed by S
 * In detached mode the monitor closes the status fd after "started".
 */
export type ExecutorStatus =
  | { type: 'step'; text: string }
  | { type: 'paused'; pid: number; monitorPid: number }
  | { type: 'setup'; pid: number }
  | { type: 'created'; pid: number; monitorPid: number }
  | { type: 'started'; pid: number; monitorPid: number }
  | { type: 'error'; step: string; errno?: string; message: string; exitCode: number }
  | { type: 'exited'; code: number; signal: number | null; oomKilled?: boolean };
