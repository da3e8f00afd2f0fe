/**
 * The shape of one doctor check. `fail` means no container can run here
 * (doctor exits 1); `warn` means containers run but a feature is lost (say
 * which in `breaks`); every problem carries the exact `fix`.
 */
import type { HostFacts } from './facts.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** stable identifier for scripts, e.g. "subuid" */
  id: string;
  title: string;
  status: CheckStatus;
  /** what was found, one line */
  detail: string;
  /** what does not work because of it (warn and fail only) */
  breaks?: string;
  /** the exact commands or steps that repair it; may span lines */
  fix?: string;
}

/** A check returns null when it does not apply to this host (cgroup delegation on cgroup v1). */
export type Check = (facts: HostFacts) => Promise<CheckResult | null>;

export function ok(id: string, title: string, detail: string): CheckResult {
  return { id, title, status: 'ok', detail };
}

export function problem(status: 'warn' | 'fail', id: string, title: string, detail: string, breaks: string, fix: string): CheckResult {
  return { id, title, status, detail, breaks, fix };
}
