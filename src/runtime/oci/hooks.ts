/**
 * OCI hooks: programs the runtime runs at fixed points of a container's life,
 * each with the container's state (JSON) on stdin.
 *
 *   prestart, createRuntime  create, after the namespaces exist and before
 *                            pivot_root; in the runtime's namespaces
 *   createContainer          then, in the container's namespaces (the path is
 *                            resolved as the runtime sees it: pivot_root has
 *                            not happened yet)
 *   startContainer           start, before the user's program; in the
 *                            container's namespaces, path inside the container
 *   poststart                start, after the program runs; a failure is a warning
 *   poststop                 delete; a failure is a warning
 *
 * The container process waits at a `sync` op of the plan during the first
 * three, and at its hold during startContainer. Hooks in the container's
 * namespaces are run by the executor joining them, as `nook exec` does.
 */
import { spawn } from 'node:child_process';
import { NookError } from '../../lib/errors.js';
import { startExecutor } from '../executor.js';
import type { ExecutorPlan, NamespacePlan } from '../plan.js';
import type { OciHook, OciSpec } from '../spec.js';
import type { OciState } from './state.js';

export type HookKind = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';

const NS_FILES: Record<string, NamespacePlan['type']> = { mount: 'mnt', uts: 'uts', ipc: 'ipc', network: 'net', cgroup: 'cgroup', pid: 'pid' };

export function hooksOf(spec: OciSpec, kind: HookKind): OciHook[] {
  return spec.hooks?.[kind] ?? [];
}

function hookFailure(kind: HookKind, hook: OciHook, how: string, stderr: string): NookError {
  const detail = stderr.trim().split('\n').filter(Boolean).slice(-1)[0];
  return new NookError(`${kind} hook ${hook.path} ${how}${detail ? `: ${detail}` : ''}`, { exitCode: 1 });
}

/** Runs one hook in the runtime's namespaces, the state on its stdin. */
function runHostHook(kind: HookKind, hook: OciHook, state: OciState): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = hook.args?.length ? hook.args : [hook.path];
    const child = spawn(hook.path, args.slice(1), { argv0: args[0], env: envOf(hook), stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    const timer = hook.timeout && hook.timeout > 0 ? setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, hook.timeout * 1000) : undefined;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    child.stdin.on('error', () => {}); // a hook that does not read its stdin
    child.stdin.end(JSON.stringify(state));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new NookError(`${kind} hook ${hook.path}: ${error.message}`, { exitCode: 1, cause: error }));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(hookFailure(kind, hook, `timed out after ${hook.timeout} s`, stderr));
      else if (code === 0) resolve();
      else reject(hookFailure(kind, hook, signal ? `was killed by ${signal}` : `exited with status ${code}`, stderr));
    });
  });
}

function envOf(hook: OciHook): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of hook.env ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The container's namespaces, to be joined through /proc/PID/ns. */
export function joinPlanNamespaces(spec: OciSpec, pid: number): { user: ExecutorPlan['user']; namespaces: NamespacePlan[] } {
  const specNs = spec.linux?.namespaces ?? [];
  const user: ExecutorPlan['user'] = specNs.some((ns) => ns.type === 'user') ? { mode: 'join', path: `/proc/${pid}/ns/user` } : { mode: 'none' };
  const namespaces = specNs
    .filter((ns) => ns.type !== 'user' && NS_FILES[ns.type])
    .map((ns) => ({ type: NS_FILES[ns.type]!, path: `/proc/${pid}/ns/${NS_FILES[ns.type]}` }));
  return { user, namespaces };
}

/** Runs one hook in the container's namespaces (the executor joins them), the state on its stdin. */
async function runContainerHook(kind: HookKind, hook: OciHook, state: OciState, spec: OciSpec): Promise<void> {
  const { user, namespaces } = joinPlanNamespaces(spec, state.pid);
  const args = hook.args?.length ? [hook.path, ...hook.args.slice(1)] : [hook.path];
  const plan: ExecutorPlan = {
    trace: false,
    user,
    namespaces,
    outerOps: [],
    innerOps: [],
    process: {
      args,
      env: hook.env ?? [],
      cwd: '/',
      uid: 0,
      gid: 0,
      additionalGids: [],
      capabilities: null,
      noNewPrivileges: false,
      seccompFilter: null,
      rlimits: [],
      oomScoreAdj: null,
      searchPath: false,
      umask: null,
    },
    monitor: { mode: 'foreground', dieWithParent: true },
  };
  const executor = startExecutor(plan, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  executor.stderr?.setEncoding('utf8');
  executor.stderr?.on('data', (chunk: string) => {
    if (stderr.length < 4096) stderr += chunk;
  });
  executor.stdin?.on('error', () => {});
  executor.stdin?.end(JSON.stringify(state));
  const timer = hook.timeout && hook.timeout > 0 ? setTimeout(() => executor.kill('SIGKILL'), hook.timeout * 1000) : undefined;
  try {
    const exit = await executor.exit;
    if (exit.code !== 0) throw hookFailure(kind, hook, exit.signal ? `was killed by signal ${exit.signal}` : `exited with status ${exit.code}`, stderr);
  } catch (error) {
    if (error instanceof NookError && error.message.startsWith(`${kind} hook`)) throw error;
    throw new NookError(`${kind} hook ${hook.path}: ${(error as Error).message}`, { exitCode: 1, cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the hooks of one kind in order; the first failure ends them and is
 * thrown, except for poststart and poststop, whose failures are reported to
 * `warn` and the rest still run (as the runtime spec says).
 */
export async function runHooks(kind: HookKind, spec: OciSpec, state: OciState, warn: (message: string) => void): Promise<void> {
  const inContainer = kind === 'createContainer' || kind === 'startContainer';
  for (const hook of hooksOf(spec, kind)) {
    try {
      if (inContainer) await runContainerHook(kind, hook, state, spec);
      else await runHostHook(kind, hook, state);
    } catch (error) {
      if (kind === 'poststart' || kind === 'poststop') warn((error as Error).message);
      else throw error;
    }
  }
}
