/**
 * `nook doctor`: every check, run in parallel over one set of facts. The
 * report is `ok` when a container can run (no check failed); warnings are
 * features lost, not reasons to refuse.
 */
import type { NookPaths } from '../lib/paths.js';
import type { Check, CheckResult } from './check.js';
import { checkCgroupControllers, checkCgroupVersion, checkLingering, checkRuntimeDir, checkSystemdUserSession } from './checks-cgroups.js';
import { checkDevNetTun, checkSlirp4netns } from './checks-network.js';
import { checkFuseOverlayfs, checkKernelOverlay, checkStorageDriver, checkStorageFilesystem } from './checks-storage.js';
import { checkNewgidmap, checkNewuidmap, checkSubgids, checkSubuids, checkUnshare, checkUserNamespaces } from './checks-userns.js';
import { executorPath } from './executor-location.js';
import { HostFacts } from './facts.js';
import { realHostView, type HostView } from './view.js';

export type { CheckResult, CheckStatus } from './check.js';

/** In the order they are printed: what stops every container first. */
export const allChecks: readonly Check[] = [
  checkUserNamespaces,
  checkSubuids,
  checkSubgids,
  checkNewuidmap,
  checkNewgidmap,
  checkUnshare,
  checkStorageFilesystem,
  checkKernelOverlay,
  checkFuseOverlayfs,
  checkStorageDriver,
  checkSlirp4netns,
  checkDevNetTun,
  checkCgroupVersion,
  checkCgroupControllers,
  checkSystemdUserSession,
  checkLingering,
  checkRuntimeDir,
];

export interface DoctorReport {
  /** a container can run here */
  ok: boolean;
  checks: CheckResult[];
}

export interface DoctorOptions {
  view?: HostView;
  checks?: readonly Check[];
  executorPath?: string;
}

async function runOne(check: Check, facts: HostFacts, index: number): Promise<CheckResult | null> {
  try {
    return await check(facts);
  } catch (error) {
    // A bug in one check must not hide the others' answers.
    const message = error instanceof Error ? error.message : String(error);
    return { id: `check-${index}`, title: check.name || `check ${index}`, status: 'warn', detail: `could not check: ${message}` };
  }
}

export async function runDoctor(paths: NookPaths, options: DoctorOptions = {}): Promise<DoctorReport> {
  const view = options.view ?? realHostView();
  // doctor always probes afresh: it is the command people run when the cached answer is suspect
  const facts = new HostFacts(view, paths, { refreshProbes: true, executorPath: options.executorPath ?? executorPath() });
  const results = await Promise.all((options.checks ?? allChecks).map((check, i) => runOne(check, facts, i)));
  const checks = results.filter((r): r is CheckResult => r !== null);
  return { ok: checks.every((c) => c.status !== 'fail'), checks };
}
