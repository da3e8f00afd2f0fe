/**
 * Progress of long steps (copying blobs, extracting layers). The library only
 * calls a `Progress` it was given and never writes to a terminal itself; the
 * CLI creates one with `createProgress()`:
 *  - on a terminal (stderr is a TTY): one live line per running task with a
 *    bar, redrawn at most 10 times a second, frozen into a final line when done;
 *  - otherwise (logs, CI, pipes): one plain line when a task starts and one
 *    when it ends, nothing in between.
 * `silentProgress` does nothing (library default, `--quiet`).
 */
export interface ProgressTask {
  /** bytes (or items) done so far */
  update(current: number): void;
  advance(delta: number): void;
  /** ends the task; `note` replaces the default "done" */
  finish(note?: string): void;
  /** ends the task as failed (the error itself is reported by the caller) */
  fail(note?: string): void;
}

export interface Progress {
  /** a one-off line: "Writing manifest to image destination" */
  step(message: string): void;
  /** a task with a size (bytes) when known */
  task(label: string, total?: number): ProgressTask;
}

const noopTask: ProgressTask = { update() {}, advance() {}, finish() {}, fail() {} };

export const silentProgress: Progress = {
  step() {},
  task: () => noopTask,
};

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  quiet?: boolean;
  /** force the plain line mode even on a terminal */
  plain?: boolean;
}

export function createProgress(options: ProgressOptions = {}): Progress {
  if (options.quiet) return silentProgress;
  const stream = options.stream ?? process.stderr;
  return stream.isTTY && !options.plain ? new TerminalProgress(stream) : new LineProgress(stream);
}

/** 1536 -> "1.5KiB" */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(value >= 100 ? 0 : 1)}${units[unit]}`;
}

class LineProgress implements Progress {
  constructor(private readonly stream: NodeJS.WritableStream) {}

  step(message: string): void {
    this.stream.write(`${message}\n`);
  }

  task(label: string, total?: number): ProgressTask {
    this.stream.write(`${label}${total !== undefined ? ` (${formatBytes(total)})` : ''}\n`);
    let ended = false;
    const end = (note: string) => {
      if (ended) return;
      ended = true;
      this.stream.write(`${label} ${note}\n`);
    };
    return { update() {}, advance() {}, finish: (note) => end(note ?? 'done'), fail: (note) => end(note ?? 'failed') };
  }
}

interface LiveTask {
  label: string;
  total: number | undefined;
  current: number;
}

class TerminalProgress implements Progress {
  private readonly live: LiveTask[] = [];
  /** lines currently drawn below the last permanent line */
  private drawnLines = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  step(message: string): void {
    this.printPermanent(message);
  }

  task(label: string, total?: number): ProgressTask {
    const task: LiveTask = { label, total, current: 0 };
    this.live.push(task);
    this.redraw(true);
    let ended = false;
    const end = (note: string) => {
      if (ended) return;
      ended = true;
      this.live.splice(this.live.indexOf(task), 1);
      this.printPermanent(`${label} ${note}`);
    };
    return {
      update: (current) => {
        task.current = current;
        this.redraw(false);
      },
      advance: (delta) => {
        task.current += delta;
        this.redraw(false);
      },
      finish: (note) => end(note ?? 'done'),
      fail: (note) => end(note ?? 'failed'),
    };
  }

  private printPermanent(line: string): void {
    this.clear();
    this.stream.write(`${line}\n`);
    this.redraw(true);
  }

  private clear(): void {
    if (this.drawnLines > 0) this.stream.write(`\x1b[${this.drawnLines}A\x1b[J`);
    this.drawnLines = 0;
  }

  private redraw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) {
      // draw the latest state once the throttle window ends
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.redraw(true);
      }, 100).unref();
      return;
    }
    this.lastDraw = now;
    this.clear();
    const width = Math.max(40, (this.stream.columns || 80) - 1);
    for (const task of this.live) this.stream.write(`${renderLine(task, width)}\n`);
    this.drawnLines = this.live.length;
  }
}

function renderLine(task: LiveTask, width: number): string {
  if (task.total === undefined && task.current === 0) return `${task.label} ...`.slice(0, width);
  const amount = task.total !== undefined ? `${formatBytes(task.current)} / ${formatBytes(task.total)}` : formatBytes(task.current);
  const barWidth = Math.min(30, Math.max(10, width - task.label.length - amount.length - 6));
  let bar: string;
  if (task.total !== undefined && task.total > 0) {
    const filled = Math.min(barWidth, Math.floor((task.current / task.total) * barWidth));
    bar = `[${'='.repeat(filled)}${filled < barWidth ? '>' : ''}${' '.repeat(Math.max(0, barWidth - filled - 1))}]`;
  } else {
    bar = '';
  }
  const line = `${task.label} ${bar} ${amount}`;
  return line.length > width ? line.slice(0, width) : line;
}
