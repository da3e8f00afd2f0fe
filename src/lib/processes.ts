/**
 * Processes nook started and recorded (a container's monitor, slirp4netns,
 * pasta) seen again later: is it still that process, or has its pid been
 * reused? /proc/PID/stat's start time (field 22, clock ticks since boot)
 * tells them apart.
 */
import { readFileSync } from 'node:fs';

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Gone, or a zombie nobody has reaped yet. */
export function processGone(pid: number): boolean {
  const fields = statFields(pid);
  return fields === undefined || fields[0] === 'Z';
}

/** The recorded process is still alive (and is not a reused pid). */
export function isSameProcess(pid: number, startTime: string | undefined): boolean {
  const fields = statFields(pid);
  if (fields === undefined || fields[0] === 'Z') return false;
  return startTime === undefined || fields[19] === startTime;
}
