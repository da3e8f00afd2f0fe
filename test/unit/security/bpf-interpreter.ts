/**
 * A small classic-BPF interpreter and the kernel's load-time checks
 * (seccomp_check_filter + bpf_check_classic), written independently of the
 * compiler so that unit tests can run compiled programs on synthetic
 * struct seccomp_data and see what the kernel would decide.
 */
import type { SockFilter } from '../../../src/security/seccomp/bpf.js';

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** up to six 64-bit arguments */
  args?: readonly (bigint | number)[];
}

const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const JMP_JA = 0x05;
const JMP_JEQ_K = 0x15;
const JMP_JGT_K = 0x25;
const JMP_JGE_K = 0x35;
const JMP_JSET_K = 0x45;
const RET_K = 0x06;

/** Throws like the kernel would refuse the program at seccomp(2) time. */
export function checkFilter(prog: readonly SockFilter[]): void {
  if (prog.length === 0 || prog.length > 4096) throw new Error(`bad program length ${prog.length}`);
  prog.forEach((ins, pc) => {
    for (const [name, value, max] of [
      ['code', ins.code, 0xffff],
      ['jt', ins.jt, 0xff],
      ['jf', ins.jf, 0xff],
      ['k', ins.k, 0xffffffff],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > max) throw new Error(`${pc}: ${name} ${value} out of range`);
    }
    switch (ins.code) {
      case LD_W_ABS:
        if (ins.k >= 64 || ins.k % 4 !== 0) throw new Error(`${pc}: load from bad offset ${ins.k}`);
        break;
      case ALU_AND_K:
      case RET_K:
        break;
      case JMP_JA:
        if (pc + 1 + ins.k >= prog.length) throw new Error(`${pc}: ja out of program`);
        break;
      case JMP_JEQ_K:
      case JMP_JGT_K:
      case JMP_JGE_K:
      case JMP_JSET_K:
        if (pc + 1 + ins.jt >= prog.length || pc + 1 + ins.jf >= prog.length) throw new Error(`${pc}: jump out of program`);
        break;
      default:
        throw new Error(`${pc}: opcode 0x${ins.code.toString(16)} not allowed in seccomp`);
    }
  });
  const last = prog[prog.length - 1]!;
  if (last.code !== RET_K) throw new Error('last instruction is not a return');
}

function dataBuffer(data: SeccompData): Buffer {
  const buf = Buffer.alloc(64);
  buf.writeInt32LE(data.nr | 0, 0);
  buf.writeUInt32LE(data.arch >>> 0, 4);
  buf.writeBigUInt64LE(data.instructionPointer ?? 0n, 8);
  (data.args ?? []).forEach((a, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  return buf;
}

/** Runs the program; returns the 32-bit value the filter returns. */
export function runFilter(prog: readonly SockFilter[], data: SeccompData): number {
  const buf = dataBuffer(data);
  let a = 0;
  let pc = 0;
  for (let steps = 0; steps <= prog.length; steps += 1) {
    const ins = prog[pc];
    if (!ins) throw new Error(`fell off the program at ${pc}`);
    switch (ins.code) {
      case LD_W_ABS:
        a = buf.readUInt32LE(ins.k);
        pc += 1;
        break;
      case ALU_AND_K:
        a = (a & ins.k) >>> 0;
        pc += 1;
        break;
      case JMP_JA:
        pc += 1 + ins.k;
        break;
      case JMP_JEQ_K:
        pc += 1 + (a === ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case JMP_JGT_K:
        pc += 1 + (a > ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case JMP_JGE_K:
        pc += 1 + (a >= ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case JMP_JSET_K:
        pc += 1 + ((a & ins.k) !== 0 ? ins.jt : ins.jf);
        break;
      case RET_K:
        return ins.k >>> 0;
      default:
        throw new Error(`unknown opcode 0x${ins.code.toString(16)}`);
    }
  }
  throw new Error('program did not terminate');
}
