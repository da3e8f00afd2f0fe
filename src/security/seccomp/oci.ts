/**
 * The OCI runtime spec's `linux.seccomp` object, validated once at the edge so
 * that the compiler can trust it.
 */
import { NookError } from '../../lib/errors.js';

export type SeccompAction =
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

export type SeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export interface LinuxSeccompArg {
  index: number;
  /**
   * Up to 64 bits: a number when exact (below 2^53), else a decimal string, so
   * that the config survives JSON (config.json) without losing precision.
   */
  value: number | string;
  valueTwo?: number | string;
  op: SeccompOperator;
}

export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** SCMP_ARCH_* names */
  architectures?: string[];
  /** SECCOMP_FILTER_FLAG_* names */
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

export const SECCOMP_ACTIONS: readonly SeccompAction[] = [
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
];

export const SECCOMP_OPERATORS: readonly SeccompOperator[] = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];

/** seccomp(2) flags the runtime spec may name, and their bits. */
export const SECCOMP_FILTER_FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1 << 0,
  SECCOMP_FILTER_FLAG_LOG: 1 << 1,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 1 << 2,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: 1 << 3,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH: 1 << 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 1 << 5,
};

/** The largest errno a filter can return (the kernel's MAX_ERRNO). */
export const MAX_ERRNO = 4095;
/** errno values profiles use most; here rather than in the compiler so that building a config does not load it. */
export const EPERM = 1;
export const ENOSYS = 38;
const U64_MAX = (1n << 64n) - 1n;

function fail(where: string, what: string): never {
  throw new NookError(`seccomp profile: ${where}: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseAction(value: unknown, where: string): SeccompAction {
  if (typeof value !== 'string' || !(SECCOMP_ACTIONS as readonly string[]).includes(value)) {
    fail(where, `unknown action ${JSON.stringify(value)} (known: ${SECCOMP_ACTIONS.join(', ')})`);
  }
  return value as SeccompAction;
}

export function parseErrno(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_ERRNO) {
    fail(where, `errno must be an integer from 0 to ${MAX_ERRNO}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** A 64-bit unsigned argument value from a JSON number, a numeric string (decimal or 0x) or a bigint. */
export function parseArgValue(value: unknown, where: string): number | string {
  let big: bigint;
  if (typeof value === 'bigint') big = value;
  else if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value);
  else if (typeof value === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(value.trim())) big = BigInt(value.trim());
  else fail(where, `argument value must be an unsigned integer, not ${JSON.stringify(value)}`);
  // A negative number is what a C int -1 looks like once JSON'd; take it as its 64-bit two's complement, as Go's uint64 conversion would.
  if (big < 0n && big >= -(1n << 63n)) big = (1n << 64n) + big;
  if (big < 0n || big > U64_MAX) fail(where, `argument value ${String(value)} does not fit in 64 bits`);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString(10);
}

function parseArg(raw: unknown, where: string): LinuxSeccompArg {
  if (!isObject(raw)) fail(where, 'an argument rule must be an object');
  const index = raw.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
    fail(where, `argument index must be 0 to 5, not ${JSON.stringify(index)}`);
  }
  const op = raw.op;
  if (typeof op !== 'string' || !(SECCOMP_OPERATORS as readonly string[]).includes(op)) {
    fail(where, `unknown operator ${JSON.stringify(op)} (known: ${SECCOMP_OPERATORS.join(', ')})`);
  }
  const arg: LinuxSeccompArg = { index, op: op as SeccompOperator, value: parseArgValue(raw.value ?? 0, where) };
  if (raw.valueTwo !== undefined && raw.valueTwo !== null) arg.valueTwo = parseArgValue(raw.valueTwo, where);
  return arg;
}

/** Validates a parsed JSON object as an OCI `linux.seccomp`. */
export function parseLinuxSeccomp(raw: unknown): LinuxSeccomp {
  if (!isObject(raw)) fail('top level', 'must be a JSON object');
  const out: LinuxSeccomp = { defaultAction: parseAction(raw.defaultAction, 'defaultAction') };
  const defaultErrnoRet = parseErrno(raw.defaultErrnoRet, 'defaultErrnoRet');
  if (defaultErrnoRet !== undefined) out.defaultErrnoRet = defaultErrnoRet;
  if (raw.architectures !== undefined && raw.architectures !== null) {
    if (!Array.isArray(raw.architectures) || !raw.architectures.every((a) => typeof a === 'string')) {
      fail('architectures', 'must be a list of SCMP_ARCH_* names');
    }
    out.architectures = [...(raw.architectures as string[])];
  }
  if (raw.flags !== undefined && raw.flags !== null) {
    if (!Array.isArray(raw.flags)) fail('flags', 'must be a list');
    out.flags = (raw.flags as unknown[]).map((f) => {
      if (typeof f !== 'string' || !(f in SECCOMP_FILTER_FLAGS)) {
        fail('flags', `unknown flag ${JSON.stringify(f)} (known: ${Object.keys(SECCOMP_FILTER_FLAGS).join(', ')})`);
      }
      return f;
    });
  }
  if (typeof raw.listenerPath === 'string' && raw.listenerPath !== '') out.listenerPath = raw.listenerPath;
  if (raw.syscalls !== undefined && raw.syscalls !== null) {
    if (!Array.isArray(raw.syscalls)) fail('syscalls', 'must be a list');
    out.syscalls = raw.syscalls.map((s: unknown, i: number) => {
      const where = `syscalls[${i}]`;
      if (!isObject(s)) fail(where, 'must be an object');
      if (!Array.isArray(s.names) || !s.names.every((n) => typeof n === 'string' && n !== '')) {
        fail(where, 'names must be a list of system call names');
      }
      const rule: LinuxSyscall = { names: [...(s.names as string[])], action: parseAction(s.action, `${where}.action`) };
      const errnoRet = parseErrno(s.errnoRet, `${where}.errnoRet`);
      if (errnoRet !== undefined) rule.errnoRet = errnoRet;
      if (s.args !== undefined && s.args !== null) {
        if (!Array.isArray(s.args)) fail(`${where}.args`, 'must be a list');
        rule.args = s.args.map((a: unknown, j: number) => parseArg(a, `${where}.args[${j}]`));
      }
      return rule;
    });
  }
  return out;
}
