/**
 * The suite's results: rows of figures (nook, podman, a reference such as a
 * kernel floor or the host), the goals of issue 7 checked on them, the JSON
 * written to bench/results/latest.json and the table printed at the end.
 */
import { formatRatio, formatSummary, formatValue, ratio, type Summary, type Unit } from './stats.js';

export const GROUPS = ['start', 'exec', 'pull', 'load', 'memory', 'fs', 'network', 'profile'] as const;
export type GroupName = (typeof GROUPS)[number];

export interface Series {
  name: string;
  summary: Summary;
}

export interface Goal {
  /** e.g. "nook/podman <= 0.5" */
  text: string;
  /** the figure the goal is about (a ratio of medians) */
  value: number | undefined;
  met: boolean | undefined;
}

export interface Row {
  group: GroupName;
  name: string;
  unit: Unit;
  nook?: Summary;
  podman?: Summary;
  /** nook's median / podman's */
  ratio?: number;
  /** a floor (the kernel, runc, a loopback transfer) or the host itself */
  reference?: Series;
  goal?: Goal;
  /** anything a reader of the JSON may want (per-process memory, commands) */
  detail?: Record<string, unknown>;
  error?: string;
}

export function compareRow(row: Omit<Row, 'ratio'>): Row {
  const r = ratio(row.nook, row.podman);
  return { ...row, ...(r !== undefined ? { ratio: r } : {}) };
}

/** A goal that a figure (a ratio) stays at or below a limit. */
export function atMost(text: string, value: number | undefined, limit: number): Goal {
  return { text, value, met: value === undefined ? undefined : value <= limit };
}

/** A goal that a figure (a ratio) reaches at least a limit. */
export function atLeast(text: string, value: number | undefined, limit: number): Goal {
  return { text, value, met: value === undefined ? undefined : value >= limit };
}

export function errorRow(group: GroupName, name: string, error: unknown): Row {
  return { group, name, unit: 'seconds', error: error instanceof Error ? error.message : String(error) };
}

export interface Results {
  suite: 'nook bench';
  date: string;
  machine: Record<string, unknown>;
  versions: Record<string, string>;
  /** where file-heavy figures were taken, in words */
  filesystem: string;
  options: Record<string, unknown>;
  notes: string[];
  rows: Row[];
  /** seconds the whole run took */
  elapsed: number;
}

function goalCell(goal: Goal | undefined): string {
  if (!goal) return '';
  const mark = goal.met === undefined ? '?' : goal.met ? 'met' : 'NOT MET';
  return `${goal.text}: ${formatRatio(goal.value)} ${mark}`;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** The table: one section per group, one line per row. */
export function renderTable(rows: readonly Row[]): string {
  const header = ['', 'nook', 'podman', 'nook/podman', 'reference', 'goal'];
  const lines: string[] = [];
  for (const group of GROUPS) {
    const groupRows = rows.filter((row) => row.group === group);
    if (groupRows.length === 0) continue;
    const cells = groupRows.map((row) =>
      row.error
        ? [`  ${row.name}`, `error: ${row.error}`, '', '', '', '']
        : [
            `  ${row.name}`,
            row.nook ? formatSummary(row.nook, row.unit) : '',
            row.podman ? formatSummary(row.podman, row.unit) : '',
            row.nook && row.podman ? formatRatio(row.ratio) : '',
            row.reference ? `${row.reference.name}: ${formatValue(row.reference.summary.median, row.unit)}` : '',
            goalCell(row.goal),
          ],
    );
    const widths = header.map((h, i) => Math.max(i === 0 ? group.length : h.length, ...cells.filter((c) => !c[1]!.startsWith('error:') || i === 0).map((c) => c[i]!.length)));
    lines.push('');
    lines.push(header.map((h, i) => pad(i === 0 ? group : h, widths[i]!)).join('  ').trimEnd());
    for (const c of cells) {
      if (c[1]!.startsWith('error:')) lines.push(`${pad(c[0]!, widths[0]!)}  ${c[1]}`);
      else lines.push(c.map((cell, i) => pad(cell, widths[i]!)).join('  ').trimEnd());
    }
  }
  return lines.join('\n');
}

/** The goals, one line each, and whether all were met. */
export function renderGoals(rows: readonly Row[]): { text: string; allMet: boolean } {
  const withGoals = rows.filter((row) => row.goal);
  const lines = withGoals.map((row) => `  ${row.goal!.met === undefined ? '?' : row.goal!.met ? 'met    ' : 'NOT MET'}  ${row.group} ${row.name}: ${row.goal!.text}, is ${formatRatio(row.goal!.value)}`);
  const failed = rows.filter((row) => row.error).map((row) => `  error    ${row.group} ${row.name}: ${row.error}`);
  return { text: ['goals:', ...lines, ...failed].join('\n'), allMet: withGoals.every((row) => row.goal!.met === true) && failed.length === 0 };
}
