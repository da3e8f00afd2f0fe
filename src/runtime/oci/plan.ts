/**
 * A bundle's config.json -> the executor plan, through the same specToPlan
 * that `nook run` uses. What differs from nook's own containers: the root is
 * a plain directory (specToPlan binds it onto itself), a spec without
 * capabilities gets none (as runc), and the OCI hooks that run before
 * pivot_root need a `sync` point there.
 */
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { NookError } from '../../lib/errors.js';
import { toCapabilitySets } from '../../security/capabilities.js';
import type { ExecutorPlan, MonitorPlan } from '../plan.js';
import { specToPlan } from '../spec-to-plan.js';
import type { OciSpec } from '../spec.js';
import { hooksOf } from './hooks.js';

/** config.json of a bundle, with root.path made absolute (relative paths are relative to the bundle). */
export function bundleSpec(bundle: string, text: string): OciSpec {
  let spec: OciSpec;
  try {
    spec = JSON.parse(text) as OciSpec;
  } catch (error) {
    throw new NookError(`config.json of ${bundle} is not valid JSON: ${(error as Error).message}`, { exitCode: 1, cause: error });
  }
  if (!spec || typeof spec !== 'object') throw new NookError(`config.json of ${bundle} is not an object`, { exitCode: 1 });
  if (!spec.root?.path) throw new NookError('config.json has no root.path', { exitCode: 1 });
  if (!isAbsolute(spec.root.path)) spec.root = { ...spec.root, path: resolve(bundle, spec.root.path) };
  return spec;
}

/** Hooks that run while the container process waits before pivot_root. */
export function needsCreateSync(spec: OciSpec): boolean {
  return hooksOf(spec, 'prestart').length + hooksOf(spec, 'createRuntime').length + hooksOf(spec, 'createContainer').length > 0;
}

export interface OciPlanOptions {
  monitor: MonitorPlan;
  hold: boolean;
  startFifo?: string;
  /** plan.joinCgroup from the cgroup manager */
  joinCgroup?: string;
  holdBeforeNamespaces?: boolean;
  trace: boolean;
}

/** The spec's seccomp program compiled to BPF (hex), or null when it has none; `exec` uses it too. */
export async function compileSeccomp(spec: OciSpec): Promise<string | null> {
  const seccomp = spec.linux?.seccomp;
  if (!seccomp) return null;
  const [{ compileSeccomp: compile }, { parseLinuxSeccomp }] = await Promise.all([import('../../security/seccomp/compiler.js'), import('../../security/seccomp/oci.js')]);
  return compile(parseLinuxSeccomp(seccomp)).hex;
}

export async function ociPlan(spec: OciSpec, options: OciPlanOptions): Promise<ExecutorPlan> {
  if (!spec.process) throw new NookError('config.json has no process', { exitCode: 1 });
  try {
    statSync(spec.root!.path);
  } catch {
    throw new NookError(`rootfs (${spec.root!.path}) does not exist`, { exitCode: 1 });
  }
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.type === 'time') throw new NookError('the time namespace is not supported', { exitCode: 1 });
  }
  const [{ idMapHelpers }, seccompFilter] = await Promise.all([import('../../container/idmap-setup.js'), compileSeccomp(spec)]);
  const helpers = idMapHelpers(spec);
  const plan = specToPlan(spec, {
    rootfsOps: [],
    uidHelper: helpers.uidHelper,
    gidHelper: helpers.gidHelper,
    // No capabilities listed: none at all, as runc.
    capabilities: toCapabilitySets(spec.process.capabilities ?? {}),
    seccompFilter,
    monitor: options.monitor,
    trace: options.trace,
    isDirectory: (path) => {
      try {
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
  });
  if (needsCreateSync(spec)) {
    const pivot = plan.innerOps.findIndex((op) => op.op === 'pivot-root');
    plan.innerOps.splice(pivot < 0 ? plan.innerOps.length : pivot, 0, { op: 'sync', name: 'prestart, createRuntime and createContainer hooks' });
  }
  plan.hold = options.hold;
  if (options.startFifo) plan.startFifo = options.startFifo;
  if (options.joinCgroup) plan.joinCgroup = options.joinCgroup;
  if (options.holdBeforeNamespaces) plan.holdBeforeNamespaces = true;
  return plan;
}
