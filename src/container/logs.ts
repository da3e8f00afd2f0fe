/**
 * A detached container's output, as its monitor wrote it: podman's k8s-file
 * format, one line per record: `TIMESTAMP STREAM F|P TEXT` (P: a partial line
 * continued by the next record).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NookError } from '../lib/errors.js';
import type { ContainerRecord, ContainerStore } from './store.js';

export interface LogOptions {
  follow: boolean;
  tail?: number;
  timestamps: boolean;
}

export interface LogRecord {
  time: string;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  text: string;
}

export function parseLogLine(line: string): LogRecord | null {
  const match = /^(\S+) (stdout|stderr) ([FP]) ?([^\n]*)$/.exec(line); // a terminal's lines end in \r
  if (!match) return null;
  return { time: match[1]!, stream: match[2] as 'stdout' | 'stderr', partial: match[3] === 'P', text: match[4]! };
}

function emit(record: LogRecord, timestamps: boolean): void {
  const out = record.stream === 'stdout' ? process.stdout : process.stderr;
  out.write(`${timestamps ? `${record.time} ` : ''}${record.text}${record.partial ? '' : '\n'}`);
}

export async function printLogs(store: ContainerStore, record: ContainerRecord, options: LogOptions): Promise<void> {
  const path = join(store.dataDir(record.id), 'ctr.log');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    if (record.detached) return; // nothing written yet
    throw new NookError(`container ${record.name} was not run detached: its output went to the terminal, there is no log`);
  }
  try {
    let position = 0;
    let pending = '';
    const readNew = (): LogRecord[] => {
      const size = statSync(path).size;
      if (size <= position) return [];
      const buffer = Buffer.alloc(size - position);
      const read = readSync(fd, buffer, 0, buffer.length, position);
      position += read;
      const text = pending + buffer.subarray(0, read).toString('utf8');
      const lines = text.split('\n');
      pending = lines.pop() ?? '';
      return lines.map(parseLogLine).filter((r): r is LogRecord => r !== null);
    };
    let first = readNew();
    if (options.tail !== undefined) first = options.tail === 0 ? [] : first.slice(-options.tail);
    for (const r of first) emit(r, options.timestamps);
    if (!options.follow) return;
    for (;;) {
      const live = store.refreshStatus(store.find(record.id) ?? record);
      for (const r of readNew()) emit(r, options.timestamps);
      if (live.status !== 'running') {
        for (const r of readNew()) emit(r, options.timestamps);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    closeSync(fd);
  }
}
