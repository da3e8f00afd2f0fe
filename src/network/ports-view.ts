/**
 * Reading published ports back from a container's recorded NetworkState
 * (for `nook port` and `ps`). The record is JSON written by an earlier nook,
 * so it is checked, not trusted.
 */
import { NookError } from '../lib/errors.js';
import type { PortMapping } from './publish.js';

function isPortMapping(value: unknown): value is PortMapping {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return typeof p.hostIp === 'string' && typeof p.hostPort === 'number' && typeof p.containerPort === 'number' && (p.protocol === 'tcp' || p.protocol === 'udp');
}

/** The ports in a recorded NetworkState; [] for a container without any (or an older record). */
export function publishedPorts(state: unknown): PortMapping[] {
  const ports = (state as { ports?: unknown } | undefined)?.ports;
  return Array.isArray(ports) ? ports.filter(isPortMapping) : [];
}

/** `80`, `80/tcp` or `53/udp`; all when undefined. */
export function selectPorts(ports: PortMapping[], selector: string | undefined): PortMapping[] {
  if (selector === undefined) return ports;
  const match = /^(\d+)(?:\/(tcp|udp))?$/i.exec(selector.trim());
  if (!match) throw new NookError(`"${selector}" is not a port: use PORT or PORT/tcp or PORT/udp`);
  const port = Number(match[1]);
  const protocol = (match[2] ?? 'tcp').toLowerCase();
  const found = ports.filter((p) => p.containerPort === port && p.protocol === protocol);
  if (found.length === 0) throw new NookError(`port ${port}/${protocol} is not published`);
  return found;
}
