/**
 * The benchmark suite's pure parts: statistics, number formats, goals and the
 * table, the CPU profile breakdown, the apt mirror lookup. No timing here: the
 * suite itself (npm run bench) is never part of npm test.
 */
import test from 'ava';
import { analyzeProfile, frameCategory, type CpuProfile } from '../../bench/cpuprofile.js';
import { mirrorFromDeb822, mirrorFromOneLine } from '../../bench/images.js';
import { atLeast, atMost, compareRow, renderGoals, renderTable } from '../../bench/report.js';
import { formatBytes, formatRate, formatRatio, formatSeconds, formatSummary, median, ratio, summarize } from '../../bench/stats.js';
import { descendantsOf, type ProcessInfo } from '../../bench/procs.js';
import { forwardedArgs, parseOptions } from '../../bench/options.js';
import { parsePerfScript, startTimeline } from '../../bench/timeline.js';

test('median of an odd count is the middle value, of an even count the mean of the two middle ones', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([7]), 7);
  t.throws(() => median([]));
});

test('median does not reorder its input', (t) => {
  const values = [3, 1, 2];
  median(values);
  t.deepEqual(values, [3, 1, 2]);
});

test('summarize keeps n, median, min, max and the samples in order', (t) => {
  t.deepEqual(summarize([0.3, 0.1, 0.2, 0.9]), { n: 4, median: 0.25, min: 0.1, max: 0.9, samples: [0.3, 0.1, 0.2, 0.9] });
  t.throws(() => summarize([]));
  t.throws(() => summarize([1, Number.NaN]));
});

test('ratio is of medians and undefined when a side is missing or zero', (t) => {
  t.is(ratio(summarize([1, 2, 3]), summarize([4, 4, 4])), 0.5);
  t.is(ratio(1, 4), 0.25);
  t.is(ratio(undefined, 4), undefined);
  t.is(ratio(1, 0), undefined);
});

test('ratios print with two significant digits below 10', (t) => {
  t.is(formatRatio(0.4249), '0.42x');
  t.is(formatRatio(0.05), '0.050x');
  t.is(formatRatio(1), '1.0x');
  t.is(formatRatio(1.26), '1.3x');
  t.is(formatRatio(12.4), '12x');
  t.is(formatRatio(undefined), '-');
  t.is(formatRatio(Number.POSITIVE_INFINITY), '-');
});

test('durations, sizes and rates use readable units', (t) => {
  t.is(formatSeconds(0.00084), '840 µs');
  t.is(formatSeconds(0.0123), '12.3 ms');
  t.is(formatSeconds(0.212), '212 ms');
  t.is(formatSeconds(1.234), '1.23 s');
  t.is(formatSeconds(42), '42.0 s');
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(3.4 * 1024 * 1024), '3.40 MiB');
  t.is(formatBytes(1536), '1.50 KiB');
  t.is(formatRate(600 * 1024 * 1024), '600 MiB/s');
});

test('a summary prints as median (min-max), a single sample alone', (t) => {
  t.is(formatSummary(summarize([0.2, 0.1, 0.3]), 'seconds'), '200 ms (100 ms-300 ms)');
  t.is(formatSummary(summarize([2]), 'seconds'), '2.00 s');
  t.is(formatSummary(undefined, 'seconds'), '-');
});

test('goals: at most and at least, unknown without a figure', (t) => {
  t.true(atMost('x', 0.5, 0.5).met);
  t.false(atMost('x', 0.51, 0.5).met);
  t.true(atLeast('x', 0.9, 0.9).met);
  t.false(atLeast('x', 0.89, 0.9).met);
  t.is(atMost('x', undefined, 0.5).met, undefined);
});

test('the table has a section per group with nook, podman, their ratio, the reference and the goal', (t) => {
  const row = compareRow({ group: 'start', name: 'busybox', unit: 'seconds', nook: summarize([0.1]), podman: summarize([0.4]) });
  t.is(row.ratio, 0.25);
  const rows = [
    { ...row, goal: atMost('nook/podman <= 0.5', row.ratio, 0.5) },
    { group: 'start' as const, name: 'floor', unit: 'seconds' as const, reference: { name: 'kernel', summary: summarize([0.003]) } },
    { group: 'exec' as const, name: 'failed', unit: 'seconds' as const, error: 'boom' },
  ];
  const table = renderTable(rows);
  t.regex(table, /^start\s+nook\s+podman\s+nook\/podman\s+reference\s+goal$/m);
  t.regex(table, /^ {2}busybox\s+100 ms\s+400 ms\s+0\.25x\s+nook\/podman <= 0\.5: 0\.25x met$/m);
  t.regex(table, /^ {2}floor\s+.*kernel: 3\.00 ms$/m);
  t.regex(table, /^ {2}failed\s+error: boom$/m);
  const goals = renderGoals(rows);
  t.false(goals.allMet);
  t.regex(goals.text, /met +start busybox: nook\/podman <= 0\.5, is 0\.25x/);
  t.regex(goals.text, /error +exec failed: boom/);
});

test('profile frames are charged to nook areas, module loading, dependencies or V8', (t) => {
  t.is(frameCategory({ functionName: 'x', url: 'file:///w/dist/src/image/store.js' }), 'nook: image');
  t.is(frameCategory({ functionName: 'main', url: 'file:///w/dist/src/cli/main.js' }), 'nook: cli');
  t.is(frameCategory({ functionName: 'x', url: 'file:///w/node_modules/commander/lib/command.js' }), 'dependency: commander');
  t.is(frameCategory({ functionName: 'x', url: 'file:///w/node_modules/@scope/pkg/index.js' }), 'dependency: @scope/pkg');
  t.is(frameCategory({ functionName: 'load', url: 'node:internal/modules/esm/loader' }), 'module loading');
  t.is(frameCategory({ functionName: '(idle)', url: '' }), 'idle (waiting: child processes, I/O)');
  t.is(frameCategory({ functionName: 'readFileSync', url: 'node:fs' }), undefined);
});

test('a profile sample is charged to the nearest telling frame from the leaf', (t) => {
  // root -> store.js -> node:fs (leaf); root -> loader (leaf); root -> executor.js; (idle)
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '' }, children: [2, 4, 5, 6] },
      { id: 2, callFrame: { functionName: 'readImage', url: 'file:///c/dist/src/image/store.js' }, children: [3] },
      { id: 3, callFrame: { functionName: 'readFileSync', url: 'node:fs' } },
      { id: 4, callFrame: { functionName: 'import', url: 'node:internal/modules/esm/loader' } },
      { id: 5, callFrame: { functionName: 'spawnExecutor', url: 'file:///c/dist/src/runtime/executor.js' } },
      { id: 6, callFrame: { functionName: '(idle)', url: '' } },
    ],
    startTime: 1_000_000,
    endTime: 1_010_000,
    samples: [4, 4, 3, 5, 6, 6],
    timeDeltas: [1000, 1000, 2000, 1000, 2000, 3000],
  };
  const breakdown = analyzeProfile(profile);
  t.is(breakdown.duration, 0.01);
  t.deepEqual(breakdown.categories, { 'module loading': 0.002, 'nook: image': 0.002, 'nook: runtime': 0.001, 'idle (waiting: child processes, I/O)': 0.005 });
  t.is(breakdown.untilExecutor, 0.005);
  t.deepEqual(Object.keys(breakdown.topFunctions), ['(idle)', 'import node:internal/modules/esm/loader:1', 'readFileSync node:fs:1', 'spawnExecutor dist/src/runtime/executor.js:1']);
});

test('the Debian mirror comes from apt deb822 sources, then one-line sources', (t) => {
  const deb822 = [
    'Types: deb-src',
    'URIs: http://src.example/debian',
    'Suites: bookworm',
    '',
    'Types: deb',
    '# http://snapshot.debian.org/archive/debian/20250520T000000Z',
    'URIs: http://deb.debian.org/debian',
    'Suites: bookworm bookworm-updates',
    'Components: main',
    '',
    'Types: deb',
    'URIs: http://deb.debian.org/debian-security',
    'Suites: bookworm-security',
  ].join('\n');
  t.is(mirrorFromDeb822(deb822, 'bookworm'), 'http://deb.debian.org/debian');
  t.is(mirrorFromDeb822(deb822, 'trixie'), undefined);
  t.is(mirrorFromDeb822('Enabled: no\nTypes: deb\nURIs: http://off/\nSuites: bookworm\n', 'bookworm'), undefined);
  t.is(mirrorFromOneLine('# deb http://x/ bookworm main\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n', 'bookworm'), 'http://mirror.example/debian');
  t.is(mirrorFromOneLine('deb http://mirror.example/debian bullseye main\n', 'bookworm'), undefined);
});

test("a container's own processes are its pid and all their descendants", (t) => {
  const p = (pid: number, ppid: number): ProcessInfo => ({ pid, ppid, name: String(pid), args: '', state: 'S' });
  const all = [p(10, 1), p(11, 10), p(12, 11), p(13, 11), p(20, 1), p(21, 20)];
  t.deepEqual([...descendantsOf(11, all)].sort(), [11, 12, 13]);
});

test('options: defaults, --quick, --only, and what is forwarded to the measuring process', (t) => {
  const defaults = parseOptions([]);
  t.deepEqual(defaults.runs, { latency: 10, heavy: 3, transfer: 5 });
  t.deepEqual(defaults.drivers, ['overlay', 'fuse-overlayfs', 'vfs']);
  t.is(defaults.groups.length, 8);
  const quick = parseOptions(['--quick', '--only', 'start,exec', '--drivers', 'overlay']);
  t.deepEqual(quick.runs, { latency: 3, heavy: 1, transfer: 2 });
  t.deepEqual(quick.groups, ['start', 'exec']);
  t.deepEqual(parseOptions(forwardedArgs(quick)).groups, ['start', 'exec']);
  t.deepEqual(parseOptions(forwardedArgs(quick)).runs, quick.runs);
  t.throws(() => parseOptions(['--only', 'nope']), { message: /unknown group "nope"/ });
  t.throws(() => parseOptions(['--runs', '0']), { message: /positive integer/ });
});

test('the start timeline follows the run\'s process tree through perf sched events', (t) => {
  const perf = [
    '              sh   100 [000]   10.000000: sched:sched_process_exec: filename=/usr/bin/sh pid=100 old_pid=100',
    '            node   100 [000]   10.010000: sched:sched_process_exec: filename=/usr/bin/node pid=100 old_pid=100',
    '        other   555 [001]   10.020000: sched:sched_process_exec: filename=/bin/true pid=555 old_pid=555',
    '            node   100 [000]   10.200000: sched:sched_process_fork: comm=node pid=100 child_comm=node child_pid=101',
    '       nook-exec   101 [000]   10.210000: sched:sched_process_exec: filename=/x/dist/helpers/nook-exec pid=101 old_pid=101',
    '       nook-exec   101 [000]   10.211000: sched:sched_process_fork: comm=nook-exec pid=101 child_comm=nook-exec child_pid=102',
    '       nook-exec   102 [000]   10.212000: sched:sched_process_fork: comm=nook-exec pid=102 child_comm=nook-exec child_pid=103',
    '       newuidmap   103 [000]   10.213000: sched:sched_process_exec: filename=/usr/bin/newuidmap pid=103 old_pid=103',
    '       newuidmap   103 [000]   10.214000: sched:sched_process_exit: comm=newuidmap pid=103 prio=120 group_dead=true',
    '            node   100 [000]   10.220000: sched:sched_process_fork: comm=node pid=100 child_comm=node child_pid=104',
    '         nsenter   104 [000]   10.221000: sched:sched_process_exec: filename=/usr/bin/nsenter pid=104 old_pid=104',
    '              ip   104 [000]   10.222000: sched:sched_process_exec: filename=/usr/bin/ip pid=104 old_pid=104',
    '              ip   104 [000]   10.226000: sched:sched_process_exit: comm=ip pid=104 prio=120 group_dead=true',
    '       nook-exec   102 [000]   10.230000: sched:sched_process_fork: comm=nook-exec pid=102 child_comm=nook-exec child_pid=105',
    '            true   105 [000]   10.240000: sched:sched_process_exec: filename=/bin/true pid=105 old_pid=105',
    '            true   105 [000]   10.240500: sched:sched_process_exit: comm=true pid=105 prio=120 group_dead=true',
    '            node   100 [000]   10.260000: sched:sched_process_exit: comm=node pid=100 prio=120 group_dead=true',
  ].join('\n');
  const events = parsePerfScript(perf);
  t.is(events.length, 17);
  const timeline = startTimeline(events, 100, '/bin/true');
  const ms = (s: number) => Math.round(s * 1e6) / 1e3;
  t.is(ms(timeline.beforeExecutor), 200);
  t.is(ms(timeline.executorToCommand), 30);
  t.is(ms(timeline.command), 0.5);
  t.is(ms(timeline.afterCommand), 19.5);
  t.is(ms(timeline.total), 250);
  t.deepEqual(Object.fromEntries(Object.entries(timeline.helpers).map(([k, v]) => [k, ms(v)])), { newuidmap: 1, nsenter: 5 });
});
