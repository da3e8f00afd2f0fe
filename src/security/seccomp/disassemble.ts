/**
 * A readable listing of a seccomp program, for `--trace`, `--debug` and
 * tests: one line per instruction, with the system call names and the
 * seccomp_data fields spelled out.
 *
 *   0000: 0x20 0x00 0x00 0x00000004  ld  [4]                 ; arch
 *   0001: 0x15 0x02 0x00 0xc000003e  jeq 0xc000003e 0004 0002 ; AUDIT_ARCH_X86_64
 */
import { AUDIT_ARCH, type SeccompArch } from './arch.js';
import { OP, decodeFilter, describeReturn, type SockFilter } from './bpf.js';
import { syscallTables } from './syscall-tables.js';

function fieldName(offset: number): string {
  if (offset === 0) return 'nr';
  if (offset === 4) return 'arch';
  if (offset === 8) return 'instruction_pointer.lo';
  if (offset === 12) return 'instruction_pointer.hi';
  if (offset >= 16 && offset < 64) {
    const i = Math.floor((offset - 16) / 8);
    return `args[${i}].${(offset - 16) % 8 === 0 ? 'lo' : 'hi'}`;
  }
  return '?';
}

const namesByNumber = new Map<SeccompArch, Map<number, string>>();
function syscallName(arch: SeccompArch, nr: number): string | undefined {
  let names = namesByNumber.get(arch);
  if (!names) {
    names = new Map();
    for (const [name, n] of Object.entries(syscallTables[arch])) if (!names.has(n)) names.set(n, name);
    namesByNumber.set(arch, names);
  }
  return names.get(nr);
}

function archOfToken(k: number): SeccompArch | undefined {
  return (Object.keys(AUDIT_ARCH) as SeccompArch[]).find((a) => AUDIT_ARCH[a] === k);
}

const hex = (n: number, width: number): string => `0x${(n >>> 0).toString(16).padStart(width, '0')}`;
const at = (n: number): string => String(n).padStart(4, '0');

interface Knowledge {
  /** what A may hold: seccomp_data offsets loaded, or -1 for "computed" */
  loads: Set<number>;
  /** which ABI's section the instruction may be in */
  arches: Set<SeccompArch | undefined>;
}

/**
 * What the accumulator holds at each instruction, found by following the
 * jumps (all forward, so one pass in order sees every predecessor first).
 * Program order alone would lie: argument checks load other words just
 * before the next syscall comparison.
 */
function analyse(ins: readonly SockFilter[]): Knowledge[] {
  const known: Knowledge[] = ins.map(() => ({ loads: new Set(), arches: new Set() }));
  if (known[0]) known[0].arches.add(undefined);
  const flow = (to: number, loads: Set<number>, arches: Set<SeccompArch | undefined>): void => {
    const target = known[to];
    if (!target) return;
    loads.forEach((l) => target.loads.add(l));
    arches.forEach((a) => target.arches.add(a));
  };
  ins.forEach((i, pc) => {
    const here = known[pc]!;
    switch (i.code) {
      case OP.LD_ABS:
        return flow(pc + 1, new Set([i.k]), here.arches);
      case OP.AND:
        return flow(pc + 1, new Set([-1]), here.arches);
      case OP.JA:
        return flow(pc + 1 + i.k, here.loads, here.arches);
      case OP.RET:
        return;
      default: {
        const archToken = i.code === OP.JEQ && here.loads.size === 1 && here.loads.has(4) ? archOfToken(i.k) : undefined;
        flow(pc + 1 + i.jt, here.loads, archToken ? new Set([archToken]) : here.arches);
        flow(pc + 1 + i.jf, here.loads, here.arches);
      }
    }
  });
  return known;
}

/** Lists a program (instructions, or the hex the plan carries). */
export function disassemble(program: readonly SockFilter[] | string): string {
  const ins = typeof program === 'string' ? decodeFilter(program) : program;
  const known = analyse(ins);
  const lines: string[] = [];
  ins.forEach((i, pc) => {
    const raw = `${at(pc)}: ${hex(i.code, 2)} ${hex(i.jt, 2)} ${hex(i.jf, 2)} ${hex(i.k, 8)}  `;
    const { loads, arches } = known[pc]!;
    const holds = loads.size === 1 ? [...loads][0] : undefined;
    let text: string;
    let note = '';
    switch (i.code) {
      case OP.LD_ABS:
        text = `ld  [${i.k}]`;
        note = fieldName(i.k);
        break;
      case OP.AND:
        text = `and ${hex(i.k, 8)}`;
        break;
      case OP.JA:
        text = `ja  ${at(pc + 1 + i.k)}`;
        break;
      case OP.JEQ:
      case OP.JGT:
      case OP.JGE:
      case OP.JSET: {
        const mnemonic = i.code === OP.JEQ ? 'jeq' : i.code === OP.JGT ? 'jgt' : i.code === OP.JGE ? 'jge' : 'jset';
        text = `${mnemonic} ${hex(i.k, 8)} ${at(pc + 1 + i.jt)} ${at(pc + 1 + i.jf)}`;
        if (holds === 4) {
          const arch = archOfToken(i.k);
          if (arch) note = `AUDIT_ARCH ${arch}`;
        } else if (holds === 0 && arches.size === 1) {
          const arch = [...arches][0];
          const name = arch ? syscallName(arch, i.k) : undefined;
          if (name) note = name;
        }
        break;
      }
      case OP.RET:
        text = `ret ${describeReturn(i.k)}`;
        break;
      default:
        text = `??? code ${hex(i.code, 4)}`;
    }
    lines.push(`${raw}${note ? `${text.padEnd(30)} ; ${note}` : text}`);
  });
  return lines.join('\n');
}
