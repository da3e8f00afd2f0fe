/**
 * Dockerfile-style `--change` instructions (`nook import --change 'CMD ["sh"]'`),
 * applied to an image config, with podman's supported set: CMD, ENTRYPOINT,
 * ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR.
 */
import { NookError } from '../lib/errors.js';
import type { ImageRunConfig } from './records.js';

const supported = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

/** JSON array form (exec form) or shell form, as in a Dockerfile. */
function commandOf(value: string): string[] {
  const trimmed = value.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed) as unknown;
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return parsed;
    } catch {
      // not JSON: shell form, as Docker does
    }
  }
  return ['/bin/sh', '-c', trimmed];
}

/** "a=b c=\"d e\"" or the old "KEY value" form. */
function keyValues(value: string, instruction: string): [string, string][] {
  const trimmed = value.trim();
  if (!trimmed.includes('=')) {
    const space = trimmed.search(/\s/);
    if (space < 0) throw new NookError(`--change ${instruction} needs KEY=VALUE (or KEY VALUE)`);
    return [[trimmed.slice(0, space), trimmed.slice(space).trim()]];
  }
  const pairs: [string, string][] = [];
  const pattern = /([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(trimmed))) {
    let v = match[2]!;
    if (v.startsWith('"')) v = JSON.parse(v) as string;
    else if (v.startsWith("'")) v = v.slice(1, -1);
    pairs.push([match[1]!, v]);
  }
  if (pairs.length === 0) throw new NookError(`--change ${instruction}: cannot read ${JSON.stringify(value)}`);
  return pairs;
}

export function applyChanges(config: ImageRunConfig, changes: readonly string[]): ImageRunConfig {
  const out: ImageRunConfig = { ...config };
  for (const change of changes) {
    const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(change);
    const instruction = match?.[1]?.toUpperCase();
    const value = match?.[2] ?? '';
    if (!instruction || !supported.includes(instruction)) {
      throw new NookError(`--change ${JSON.stringify(change)}: unsupported instruction (supported: ${supported.join(', ')})`);
    }
    switch (instruction) {
      case 'CMD':
        out.Cmd = commandOf(value);
        break;
      case 'ENTRYPOINT':
        out.Entrypoint = commandOf(value);
        break;
      case 'ENV': {
        const env = [...(out.Env ?? [])];
        for (const [k, v] of keyValues(value, 'ENV')) {
          const at = env.findIndex((e) => e.startsWith(`${k}=`));
          if (at >= 0) env[at] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        out.Env = env;
        break;
      }
      case 'LABEL':
        out.Labels = { ...(out.Labels ?? {}), ...Object.fromEntries(keyValues(value, 'LABEL')) };
        break;
      case 'EXPOSE': {
        const ports = { ...(out.ExposedPorts ?? {}) };
        for (const port of value.trim().split(/\s+/).filter(Boolean)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(port)) throw new NookError(`--change EXPOSE: invalid port ${JSON.stringify(port)}`);
          ports[port.includes('/') ? port : `${port}/tcp`] = {};
        }
        out.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const volumes = { ...(out.Volumes ?? {}) };
        const list = value.trim().startsWith('[') ? (JSON.parse(value) as string[]) : value.trim().split(/\s+/);
        for (const v of list) volumes[v] = {};
        out.Volumes = volumes;
        break;
      }
      case 'STOPSIGNAL':
        out.StopSignal = value.trim();
        break;
      case 'USER':
        out.User = value.trim();
        break;
      case 'WORKDIR':
        out.WorkingDir = value.trim();
        break;
    }
  }
  return out;
}
