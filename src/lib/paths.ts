import { statSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where nook keeps things. Persistent data (images, containers' upper layers)
 * lives under the data root; runtime state that must vanish at reboot (locks,
 * sockets, pid files) under the run root.
 */
export interface NookPaths {
  /** $XDG_DATA_HOME/nook, or --root. */
  root: string;
  /** $XDG_RUNTIME_DIR/nook, a private /tmp directory, or --runroot. */
  runRoot: string;
}

export function defaultDataRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(env.HOME ?? homedir(), '.local', 'share');
  return join(base, 'nook');
}

/**
 * XDG_RUNTIME_DIR is unset or belongs to someone else after `su`/`sudo -u`,
 * and on machines without systemd-logind. Using another user's runtime dir
 * would fail later in confusing ways, so fall back to a private directory.
 */
export function defaultRunRoot(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith('/')) {
    try {
      const st = statSync(xdg);
      if (st.isDirectory() && st.uid === uid) return join(xdg, 'nook');
    } catch {
      // fall through to the private directory
    }
  }
  return join(tmpdir(), `nook-run-${uid}`);
}

export function resolvePaths(options: { root?: string | undefined; runroot?: string | undefined } = {}): NookPaths {
  return {
    root: options.root ?? defaultDataRoot(),
    runRoot: options.runroot ?? defaultRunRoot(),
  };
}

/** mkdir -p with a mode; the run root must be private, since it holds sockets and locks. */
export function ensureDir(path: string, mode = 0o700): string {
  mkdirSync(path, { recursive: true, mode });
  return path;
}
