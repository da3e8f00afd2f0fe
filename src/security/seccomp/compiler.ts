/**
 * Compiles an OCI `linux.seccomp` config into a seccomp BPF program, in
 * TypeScript, so that nook needs neither libseccomp nor cgo-style bindings:
 * the executor only hands the bytes to seccomp(2).
 *
 * Shape of the program:
 *
 *   ld arch                      ; arch check first: the same number means
 *   jeq AUDIT_ARCH_X86_64 -> S1  ; different calls on different ABIs
 *   jeq AUDIT_ARCH_I386   -> S2  ; (only when the profile lists SCMP_ARCH_X86)
 *   ret KILL_PROCESS             ; any other ABI: the process dies
 *   S1: ld nr
 *       jge 0x40000000 -> ret ERRNO(ENOSYS)   ; x32 ABI calls, x86_64 only
 *       binary search on the numbers that have rules (jge), leaves of a few
 *       jeq each, each leaf ending in `ret default`, followed by the
 *       leaf's action blocks: `ret ACTION`, or argument checks
 *   S2: ...
 *
 * Rule semantics, for each system call: the rules with argument conditions
 * are tried in profile order and the first whose conditions all hold decides;
 * then the call's unconditional rule (the first one, if several); then the
 * default action. Names a table does not know for an architecture are skipped,
 * as libseccomp does, so one profile serves every architecture. As runc does,
 * a rule that compares the same argument twice becomes one rule per
 * comparison (any of them matching is enough).
 *
 * 64-bit arguments are compared as two 32-bit halves (seccomp_data holds them
 * little-endian: low word at 16 + 8*i, high at 20 + 8*i). On i386 only the low
 * halves exist, and values are truncated to 32 bits, as libseccomp does.
 */
import { NookError } from '../../lib/errors.js';
import { Assembler, type Label } from './assembler.js';
import { AUDIT_ARCH, COMPATIBLE_ARCHES, archFromScmpName, hostSeccompArch, is64Bit, type SeccompArch } from './arch.js';
import { BPF_MAXINSNS, SECCOMP_DATA, SECCOMP_RET, encodeFilter, type SockFilter } from './bpf.js';
import { SECCOMP_FILTER_FLAGS, parseLinuxSeccomp, type LinuxSeccomp, type LinuxSeccompArg, type SeccompAction } from './oci.js';
import { syscallTables } from './syscall-tables.js';

export { EPERM, ENOSYS } from './oci.js';
import { ENOSYS, EPERM } from './oci.js';

/** x32 system calls are x86_64 numbers with this bit set (__X32_SYSCALL_BIT). */
export const X32_SYSCALL_BIT = 0x40000000;

export interface CompiledSeccomp {
  instructions: SockFilter[];
  /** struct sock_filter[] as hex: the plan's process.seccompFilter */
  hex: string;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(SECCOMP_SET_MODE_FILTER, flags, ...) */
  flags: number;
  /** the ABIs the program has a section for, native first */
  arches: SeccompArch[];
  /** profile names that are not system calls on any of those ABIs (skipped) */
  unknownNames: string[];
}

/** The 32-bit value a filter returns for an OCI action. */
export function actionValue(action: SeccompAction, errnoRet: number | undefined): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | (errnoRet ?? EPERM)) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_TRACE':
      // runc passes errnoRet as the tracer's message, EPERM when absent.
      return (SECCOMP_RET.TRACE | (errnoRet ?? EPERM)) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_NOTIFY':
      throw new NookError('seccomp: SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath), which nook does not support');
  }
}

interface Condition {
  index: number;
  op: LinuxSeccompArg['op'];
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  conditions: Condition[];
  action: number;
}

interface SyscallRules {
  /** tried in order, first match wins */
  conditional: Rule[];
  /** the call's own default: its unconditional rule, or the profile's default */
  fallback: number;
}

const U32 = 0xffffffffn;
const halves = (v: bigint): { hi: number; lo: number } => ({ hi: Number((v >> 32n) & U32), lo: Number(v & U32) });

/** A MASKED_EQ whose expected value has bits outside the mask can never hold. */
function canHold(c: Condition, wide: boolean): boolean {
  if (c.op !== 'SCMP_CMP_MASKED_EQ') return true;
  const width = wide ? (1n << 64n) - 1n : U32;
  return (c.valueTwo & ~c.value & width) === 0n;
}

function toConditions(args: readonly LinuxSeccompArg[]): Condition[][] {
  const conditions = args.map((a) => ({ index: a.index, op: a.op, value: BigInt(a.value), valueTwo: BigInt(a.valueTwo ?? 0) }));
  const indexes = new Set(conditions.map((c) => c.index));
  // runc's rule: comparing one argument twice cannot be one libseccomp rule, so each comparison becomes its own rule.
  return indexes.size < conditions.length ? conditions.map((c) => [c]) : [conditions];
}

function rulesFor(config: LinuxSeccomp, arch: SeccompArch, defaultValue: number, seen: Set<string>): Map<number, SyscallRules> {
  const table = syscallTables[arch];
  const wide = is64Bit(arch);
  const collected = new Map<number, { conditional: Rule[]; unconditional: number | undefined }>();
  for (const entry of config.syscalls ?? []) {
    const action = actionValue(entry.action, entry.errnoRet);
    const ruleSets = entry.args && entry.args.length > 0 ? toConditions(entry.args) : [[]];
    for (const name of entry.names) {
      const nr = table[name];
      if (nr === undefined) continue;
      seen.add(name);
      let rules = collected.get(nr);
      if (!rules) {
        rules = { conditional: [], unconditional: undefined };
        collected.set(nr, rules);
      }
      for (const conditions of ruleSets) {
        if (conditions.length === 0) {
          rules.unconditional ??= action;
        } else if (conditions.every((c) => canHold(c, wide))) {
          rules.conditional.push({ conditions, action });
        }
      }
    }
  }
  const out = new Map<number, SyscallRules>();
  for (const [nr, rules] of collected) {
    const fallback = rules.unconditional ?? defaultValue;
    const conditional = [...rules.conditional];
    // Trailing rules that decide what the fallback would decide anyway change nothing.
    while (conditional.length > 0 && conditional[conditional.length - 1]!.action === fallback) conditional.pop();
    if (conditional.length === 0 && fallback === defaultValue) continue;
    out.set(nr, { conditional, fallback });
  }
  return out;
}

/** Emits checks that fall through when `c` holds and jump to `fail` when not. */
function emitCondition(asm: Assembler, c: Condition, fail: Label, wide: boolean): void {
  const v = halves(c.value);
  const lowOffset = SECCOMP_DATA.argLow(c.index);
  const highOffset = SECCOMP_DATA.argHigh(c.index);

  if (c.op === 'SCMP_CMP_MASKED_EQ') {
    const want = halves(c.valueTwo);
    const parts = wide ? [{ offset: highOffset, mask: v.hi, want: want.hi }, { offset: lowOffset, mask: v.lo, want: want.lo }] : [{ offset: lowOffset, mask: v.lo, want: want.lo }];
    for (const part of parts) {
      if (part.mask === 0) continue; // canHold() made sure want is 0 there
      asm.load(part.offset);
      if (part.mask !== 0xffffffff) asm.and(part.mask);
      asm.jump('jeq', part.want, 'next', fail);
    }
    return;
  }

  if (!wide) {
    asm.load(lowOffset);
    switch (c.op) {
      case 'SCMP_CMP_EQ':
        return asm.jump('jeq', v.lo, 'next', fail);
      case 'SCMP_CMP_NE':
        return asm.jump('jeq', v.lo, fail, 'next');
      case 'SCMP_CMP_GT':
        return asm.jump('jgt', v.lo, 'next', fail);
      case 'SCMP_CMP_GE':
        return asm.jump('jge', v.lo, 'next', fail);
      case 'SCMP_CMP_LT':
        return asm.jump('jge', v.lo, fail, 'next');
      case 'SCMP_CMP_LE':
        return asm.jump('jgt', v.lo, fail, 'next');
    }
  }

  // 64 bits: the high halves decide unless they are equal, then the low halves do (unsigned).
  const ok = asm.label('ok');
  asm.load(highOffset);
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      asm.jump('jeq', v.hi, 'next', fail);
      asm.load(lowOffset);
      asm.jump('jeq', v.lo, 'next', fail);
      break;
    case 'SCMP_CMP_NE':
      asm.jump('jeq', v.hi, 'next', ok);
      asm.load(lowOffset);
      asm.jump('jeq', v.lo, fail, 'next');
      break;
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
      asm.jump('jgt', v.hi, ok, 'next');
      asm.jump('jeq', v.hi, 'next', fail);
      asm.load(lowOffset);
      asm.jump(c.op === 'SCMP_CMP_GT' ? 'jgt' : 'jge', v.lo, 'next', fail);
      break;
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE':
      asm.jump('jgt', v.hi, fail, 'next');
      asm.jump('jeq', v.hi, 'next', ok);
      asm.load(lowOffset);
      asm.jump(c.op === 'SCMP_CMP_LT' ? 'jge' : 'jgt', v.lo, fail, 'next');
      break;
  }
  asm.bind(ok);
}

function emitRules(asm: Assembler, rules: SyscallRules, wide: boolean): void {
  for (const rule of rules.conditional) {
    const next = asm.label('nextrule');
    for (const c of rule.conditions) emitCondition(asm, c, next, wide);
    asm.ret(rule.action);
    asm.bind(next);
  }
  asm.ret(rules.fallback);
}

/** How many numbers a leaf compares one after another, below the binary search. */
const LEAF_SIZE = 4;

function emitSearch(asm: Assembler, numbers: readonly number[], rules: Map<number, SyscallRules>, defaultValue: number, wide: boolean): void {
  if (numbers.length > LEAF_SIZE) {
    const mid = numbers.length >> 1;
    const upper = asm.label('ge');
    asm.jump('jge', numbers[mid]!, upper, 'next');
    emitSearch(asm, numbers.slice(0, mid), rules, defaultValue, wide);
    asm.bind(upper);
    emitSearch(asm, numbers.slice(mid), rules, defaultValue, wide);
    return;
  }
  // A leaf: compare, fall to the default, then the blocks the matches jump to.
  const shared = new Map<number, Label>();
  const own: { label: Label; rules: SyscallRules }[] = [];
  for (const nr of numbers) {
    const r = rules.get(nr)!;
    let target: Label;
    if (r.conditional.length === 0) {
      target = shared.get(r.fallback) ?? asm.label('act');
      shared.set(r.fallback, target);
    } else {
      target = asm.label(`nr${nr}_`);
      own.push({ label: target, rules: r });
    }
    asm.jump('jeq', nr, target, 'next');
  }
  asm.ret(defaultValue);
  for (const [value, label] of shared) {
    asm.bind(label);
    asm.ret(value);
  }
  for (const { label, rules: r } of own) {
    asm.bind(label);
    emitRules(asm, r, wide);
  }
}

function sectionArches(config: LinuxSeccomp, native: SeccompArch): SeccompArch[] {
  const arches: SeccompArch[] = [native];
  for (const name of config.architectures ?? []) {
    const arch = archFromScmpName(name);
    // Names for other machines (MIPS, s390x, ... in Docker's lists) do not apply here.
    if (arch && COMPATIBLE_ARCHES[native].includes(arch) && !arches.includes(arch)) arches.push(arch);
  }
  return arches;
}

/**
 * Compiles `config` (an OCI linux.seccomp, validated here) for a kernel of
 * architecture `arch` (the host's by default).
 */
export function compileSeccomp(config: LinuxSeccomp, arch: SeccompArch = hostSeccompArch()): CompiledSeccomp {
  const valid = parseLinuxSeccomp(config);
  if (valid.listenerPath) {
    throw new NookError('seccomp: listenerPath (a seccomp notification agent) is not supported by nook');
  }
  let flags = 0;
  for (const flag of valid.flags ?? []) {
    if (flag === 'SECCOMP_FILTER_FLAG_NEW_LISTENER' || flag === 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV') {
      throw new NookError(`seccomp: ${flag} needs a seccomp agent, which nook does not support`);
    }
    flags |= SECCOMP_FILTER_FLAGS[flag]!;
  }
  const defaultValue = actionValue(valid.defaultAction, valid.defaultErrnoRet);
  const arches = sectionArches(valid, arch);

  const asm = new Assembler();
  asm.load(SECCOMP_DATA.arch);
  const sections = arches.map((a) => asm.label(`arch_${a}_`));
  arches.forEach((a, i) => asm.jump('jeq', AUDIT_ARCH[a], sections[i]!, 'next'));
  asm.ret(SECCOMP_RET.KILL_PROCESS);

  const seen = new Set<string>();
  arches.forEach((a, i) => {
    asm.bind(sections[i]!);
    asm.load(SECCOMP_DATA.nr);
    if (a === 'x86_64') {
      const x32 = asm.label('x32');
      const native = asm.label('native');
      asm.jump('jge', X32_SYSCALL_BIT, x32, native);
      asm.bind(x32);
      asm.ret((SECCOMP_RET.ERRNO | ENOSYS) >>> 0);
      asm.bind(native);
    }
    const rules = rulesFor(valid, a, defaultValue, seen);
    const numbers = [...rules.keys()].sort((x, y) => x - y);
    if (numbers.length === 0) asm.ret(defaultValue);
    else emitSearch(asm, numbers, rules, defaultValue, is64Bit(a));
  });

  const instructions = asm.assemble();
  if (instructions.length > BPF_MAXINSNS) {
    throw new NookError(
      `seccomp: the profile compiles to ${instructions.length} BPF instructions, more than the kernel accepts (${BPF_MAXINSNS})`,
    );
  }
  const unknownNames = [...new Set((valid.syscalls ?? []).flatMap((s) => s.names))].filter((n) => !seen.has(n)).sort();
  return { instructions, hex: encodeFilter(instructions), flags, arches, unknownNames };
}
