/**
 * Classic BPF as seccomp uses it: the instruction encoding, the handful of
 * opcodes a seccomp filter needs, the return values, and the wire format the
 * executor hands to seccomp(2): an array of `struct sock_filter`
 * { u16 code; u8 jt; u8 jf; u32 k } (8 bytes each, little-endian on x86_64
 * and aarch64), as hex.
 */
import { NookError } from '../../lib/errors.js';

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcode parts, from <linux/bpf_common.h>.
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_K = 0x00;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;

/** The complete opcodes nook emits. */
export const OP = {
  LD_ABS: BPF_LD | BPF_W | BPF_ABS, // A = seccomp_data[k] (32 bits)
  AND: BPF_ALU | BPF_AND | BPF_K, // A &= k
  JA: BPF_JMP | BPF_JA, // pc += k
  JEQ: BPF_JMP | BPF_JEQ | BPF_K,
  JGT: BPF_JMP | BPF_JGT | BPF_K,
  JGE: BPF_JMP | BPF_JGE | BPF_K,
  JSET: BPF_JMP | BPF_JSET | BPF_K,
  RET: BPF_RET | BPF_K,
} as const;

/** The kernel refuses longer programs (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

/** Offsets into struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }. */
export const SECCOMP_DATA = {
  nr: 0,
  arch: 4,
  ipLow: 8,
  ipHigh: 12,
  /** low 32 bits of args[i] (little-endian) */
  argLow: (i: number) => 16 + 8 * i,
  /** high 32 bits of args[i] */
  argHigh: (i: number) => 20 + 8 * i,
  size: 64,
} as const;

export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  ACTION_FULL: 0xffff0000,
  DATA: 0x0000ffff,
} as const;

/** struct sock_filter[] -> hex, 8 little-endian bytes per instruction. */
export function encodeFilter(instructions: readonly SockFilter[]): string {
  const buf = Buffer.alloc(instructions.length * 8);
  instructions.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf.toString('hex');
}

/** The inverse of encodeFilter, e.g. to disassemble a plan's seccompFilter. */
export function decodeFilter(hex: string): SockFilter[] {
  if (!/^([0-9a-fA-F]{16})*$/.test(hex)) {
    throw new NookError('seccomp: a filter must be hex of 8-byte sock_filter structs');
  }
  const buf = Buffer.from(hex, 'hex');
  const out: SockFilter[] = [];
  for (let off = 0; off < buf.length; off += 8) {
    out.push({ code: buf.readUInt16LE(off), jt: buf.readUInt8(off + 2), jf: buf.readUInt8(off + 3), k: buf.readUInt32LE(off + 4) });
  }
  return out;
}

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  2: 'ENOENT',
  13: 'EACCES',
  22: 'EINVAL',
  38: 'ENOSYS',
  95: 'EOPNOTSUPP',
  97: 'EAFNOSUPPORT',
};

/** "ALLOW", "ERRNO(1 EPERM)", "KILL_PROCESS", ... for a filter's return value. */
export function describeReturn(k: number): string {
  const value = k >>> 0;
  const action = (value & SECCOMP_RET.ACTION_FULL) >>> 0;
  const data = value & SECCOMP_RET.DATA;
  switch (action) {
    case SECCOMP_RET.KILL_PROCESS:
      return 'KILL_PROCESS';
    case SECCOMP_RET.KILL_THREAD:
      return 'KILL_THREAD';
    case SECCOMP_RET.TRAP:
      return 'TRAP';
    case SECCOMP_RET.ERRNO:
      return `ERRNO(${data}${ERRNO_NAMES[data] ? ` ${ERRNO_NAMES[data]}` : ''})`;
    case SECCOMP_RET.USER_NOTIF:
      return 'USER_NOTIF';
    case SECCOMP_RET.TRACE:
      return `TRACE(${data})`;
    case SECCOMP_RET.LOG:
      return 'LOG';
    case SECCOMP_RET.ALLOW:
      return 'ALLOW';
    default:
      return `0x${value.toString(16).padStart(8, '0')}`;
  }
}
