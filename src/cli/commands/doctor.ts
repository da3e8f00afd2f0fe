/**
 * `nook doctor [--json]`: checks the host, and for each problem says what
 * breaks and the exact fix. Exit 0 when a container can run here (warnings
 * are features lost), 1 when one cannot.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../output.js';
import type { CheckResult, DoctorReport } from '../../host/doctor.js';

interface DoctorOptions {
  json?: boolean;
  format?: string;
}

const help = `
Each line is one check: ok, warn (containers run, a feature is lost) or FAIL
(no container can run). Problems come with "breaks:" (what is lost) and
"fix:" (the exact commands, most need root once).

Exit status: 0 when a container can run here, 1 when one cannot.

Examples:
  nook doctor
  nook doctor --json | jq '.checks[] | select(.status != "ok")'
`;

interface Style {
  mark: Record<CheckResult['status'], string>;
  dim: (text: string) => string;
}

function style(tty: boolean): Style {
  if (!tty) return { mark: { ok: 'ok  ', warn: 'warn', fail: 'FAIL' }, dim: (t) => t };
  const color = (code: number, text: string) => `\u001b[${code}m${text}\u001b[0m`;
  return { mark: { ok: color(32, '✓'), warn: color(33, '!'), fail: color(31, '✗') }, dim: (t) => color(2, t) };
}

function indent(text: string, label: string, width: number): string {
  const pad = ' '.repeat(width);
  return text
    .split('\n')
    .map((line, i) => (i === 0 ? `${label.padEnd(width)}${line}` : `${pad}${line}`))
    .join('\n');
}

export function renderReport(report: DoctorReport, tty: boolean): string {
  const s = style(tty);
  const lead = tty ? '    ' : '     ';
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${s.mark[check.status]} ${check.title}: ${check.detail}`);
    if (check.status === 'ok') continue;
    if (check.breaks) lines.push(lead + indent(check.breaks, 'breaks: ', 8).replaceAll('\n', `\n${lead}`));
    if (check.fix) lines.push(lead + indent(check.fix, 'fix: ', 8).replaceAll('\n', `\n${lead}`));
  }
  const warnings = report.checks.filter((c) => c.status === 'warn').length;
  const failures = report.checks.filter((c) => c.status === 'fail').length;
  lines.push('');
  if (report.ok) lines.push(`A container can run here${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''}: features lost, see above)` : ''}.`);
  else lines.push(`No container can run here: ${failures} problem${failures > 1 ? 's' : ''} to fix (marked ${tty ? '✗' : 'FAIL'}).`);
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check this host for rootless containers; say what breaks and how to fix it')
    .option('--json', 'print {ok, checks: [...]} as JSON')
    .option('--format <format>', 'output format: text or json')
    .addHelpText('after', help)
    .action(async (options: DoctorOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & DoctorOptions>();
      const [{ runDoctor }, { resolvePaths }, { printJson }] = await Promise.all([import('../../host/doctor.js'), import('../../lib/paths.js'), import('../output.js')]);
      const report = await runDoctor(resolvePaths({ root: globals.root, runroot: globals.runroot }));
      if (options.json || options.format === 'json') printJson(report);
      else process.stdout.write(renderReport(report, process.stdout.isTTY === true && !process.env.NO_COLOR));
      process.exitCode = report.ok ? 0 : 1;
    });
}
