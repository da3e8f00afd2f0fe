/**
 * Docker's (and podman's) seccomp profile files, as `--security-opt
 * seccomp=FILE.json` takes them, turned into an OCI `linux.seccomp` for one
 * container. The file format is a superset of the OCI one:
 *
 *   - `archMap` [{architecture, subArchitectures}] instead of `architectures`:
 *     the entry of the host's architecture is used, with its sub-architectures;
 *   - per rule `name` (one) or `names`, `comment`, and conditions
 *     `includes` / `excludes` on `caps` (the container's bounding set),
 *     `arches` (Go's names for the host: amd64, arm64) and `minKernel`,
 *     evaluated here, once, as Docker does in profiles/seccomp.
 *
 * A plain OCI linux.seccomp object is a valid profile too.
 */
import { readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { errnoCode, NookError } from '../../lib/errors.js';
import { GO_ARCH, SCMP_ARCH, hostSeccompArch, type SeccompArch } from './arch.js';
import { defaultSeccompConfig } from './default-profile.js';

export { defaultSeccompConfig } from './default-profile.js';
import { parseLinuxSeccomp, type LinuxSeccomp } from './oci.js';

export interface ProfileContext {
  /** The container's bounding set, CAP_* names (with or without the prefix). */
  capabilities: readonly string[];
  /** The host's architecture (default: this machine's). */
  arch?: SeccompArch;
  /** The running kernel's version, "6.8.0-45-generic" style (default: os.release()). */
  kernelVersion?: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new NookError(`seccomp profile: ${where} must be a list of strings`);
  return v as string[];
}

/** "6.8.0-45-generic" -> [6, 8, 0]; throws on something that is not a version. */
export function parseKernelVersion(version: string, where = 'kernel version'): number[] {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!match) throw new NookError(`seccomp profile: ${where} "${version}" is not a kernel version like 4.8 or 5.10.1`);
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i += 1) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const capName = (c: string): string => {
  const upper = c.trim().toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
};

interface Filter {
  caps: string[];
  arches: string[];
  minKernel: number[] | undefined;
}

function parseFilter(raw: unknown, where: string): Filter {
  if (raw === undefined || raw === null) return { caps: [], arches: [], minKernel: undefined };
  if (!isObject(raw)) throw new NookError(`seccomp profile: ${where} must be an object`);
  const minKernel = typeof raw.minKernel === 'string' && raw.minKernel !== '' ? parseKernelVersion(raw.minKernel, `${where}.minKernel`) : undefined;
  return { caps: stringList(raw.caps, `${where}.caps`).map(capName), arches: stringList(raw.arches, `${where}.arches`), minKernel };
}

/** Converts a parsed Docker-format profile into the OCI seccomp config for one container. */
export function dockerProfileToOci(raw: unknown, context: ProfileContext): LinuxSeccomp {
  if (!isObject(raw)) throw new NookError('seccomp profile: must be a JSON object');
  const arch = context.arch ?? hostSeccompArch();
  const goArch = GO_ARCH[arch];
  const kernel = parseKernelVersion(context.kernelVersion ?? release());
  const bounding = new Set(context.capabilities.map(capName));

  const out: Record<string, unknown> = { defaultAction: raw.defaultAction };
  if (raw.defaultErrnoRet !== undefined) out.defaultErrnoRet = raw.defaultErrnoRet;
  if (raw.flags !== undefined) out.flags = raw.flags;
  if (raw.listenerPath !== undefined) out.listenerPath = raw.listenerPath;

  const architectures = stringList(raw.architectures, 'architectures');
  const archMap = raw.archMap === undefined || raw.archMap === null ? [] : raw.archMap;
  if (!Array.isArray(archMap)) throw new NookError('seccomp profile: archMap must be a list');
  if (architectures.length > 0 && archMap.length > 0) {
    throw new NookError("seccomp profile: use either 'architectures' or 'archMap', not both");
  }
  if (archMap.length > 0) {
    const arches: string[] = [];
    archMap.forEach((entry: unknown, i: number) => {
      if (!isObject(entry) || typeof entry.architecture !== 'string') throw new NookError(`seccomp profile: archMap[${i}] needs an architecture`);
      if (entry.architecture !== SCMP_ARCH[arch]) return;
      arches.push(entry.architecture, ...stringList(entry.subArchitectures, `archMap[${i}].subArchitectures`));
    });
    out.architectures = arches;
  } else if (architectures.length > 0) {
    out.architectures = architectures;
  }

  const rawSyscalls = raw.syscalls === undefined || raw.syscalls === null ? [] : raw.syscalls;
  if (!Array.isArray(rawSyscalls)) throw new NookError('seccomp profile: syscalls must be a list');
  const syscalls: Record<string, unknown>[] = [];
  rawSyscalls.forEach((call: unknown, i: number) => {
    const where = `syscalls[${i}]`;
    if (!isObject(call)) throw new NookError(`seccomp profile: ${where} must be an object`);
    let names = stringList(call.names, `${where}.names`);
    if (typeof call.name === 'string' && call.name !== '') {
      if (names.length > 0) throw new NookError(`seccomp profile: ${where}: use either 'name' or 'names', not both`);
      names = [call.name];
    }
    const excludes = parseFilter(call.excludes, `${where}.excludes`);
    const includes = parseFilter(call.includes, `${where}.includes`);
    // Docker's order and meaning: any excluded arch/cap/kernel drops the rule; every included cap is required.
    if (excludes.arches.includes(goArch)) return;
    if (excludes.caps.some((c) => bounding.has(c))) return;
    if (excludes.minKernel && compareVersions(kernel, excludes.minKernel) >= 0) return;
    if (includes.arches.length > 0 && !includes.arches.includes(goArch)) return;
    if (!includes.caps.every((c) => bounding.has(c))) return;
    if (includes.minKernel && compareVersions(kernel, includes.minKernel) < 0) return;
    if (names.length === 0) return;
    const rule: Record<string, unknown> = { names, action: call.action };
    if (call.errnoRet !== undefined) rule.errnoRet = call.errnoRet;
    if (call.args !== undefined) rule.args = call.args;
    syscalls.push(rule);
  });
  out.syscalls = syscalls;
  return parseLinuxSeccomp(out);
}

/**
 * JSON.parse loses precision past 2^53, and argument values are 64-bit
 * (masks like 0xffffffffffffffff appear in real profiles): quote long integer
 * literals of value/valueTwo before parsing, so parseArgValue sees them exact.
 */
export function parseProfileJson(text: string, where: string): unknown {
  const exact = text.replace(/("value(?:Two)?"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"');
  try {
    return JSON.parse(exact);
  } catch (error) {
    throw new NookError(`seccomp profile ${where} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** Parses the text of a Docker/podman/OCI profile (`where` names it in errors) and resolves it for one container. */
export function seccompFromProfileText(text: string, where: string, context: ProfileContext): LinuxSeccomp {
  return dockerProfileToOci(parseProfileJson(text, where), context);
}

/** Reads a Docker/podman/OCI seccomp profile file and resolves it for one container. */
export async function loadSeccompProfile(path: string, context: ProfileContext): Promise<LinuxSeccomp> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = errnoCode(error);
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new NookError(`cannot read seccomp profile ${path}: ${reason}`, { cause: error });
  }
  return seccompFromProfileText(text, path, context);
}

/**
 * What `--security-opt seccomp=VALUE` means: absent or empty, nook's default
 * profile; "unconfined", no filter at all (null); anything else, a profile file.
 */
export async function seccompConfigForOption(value: string | undefined, context: ProfileContext): Promise<LinuxSeccomp | null> {
  if (value === undefined || value === '') return defaultSeccompConfig({ capabilities: context.capabilities, ...(context.arch ? { arch: context.arch } : {}) });
  if (value === 'unconfined') return null;
  return loadSeccompProfile(value, context);
}
