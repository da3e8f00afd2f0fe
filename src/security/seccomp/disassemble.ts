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

/** Lists a program (instructions, or the hex the plan carries). */
export function disassemble(program: readonly SockFilter[] | string): string {
  const ins = typeof program === 'string' ? decodeFilter(program) : program;
  // Which ABI's numbers a `jeq k` on nr means: sections start where an arch check jumps to.
  const sectionStarts: { at: number; arch: SeccompArch }[] = [];
  let loaded = -1;
  const lines: string[] = [];
  ins.forEach((i, pc) => {
    const raw = `${at(pc)}: ${hex(i.code, 2)} ${hex(i.jt, 2)} ${hex(i.jf, 2)} ${hex(i.k, 8)}  `;
    let text: string;
    let note = '';
    switch (i.code) {
      case OP.LD_ABS:
        loaded = i.k;
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
        if (loaded === 4) {
          const arch = archOfToken(i.k);
          if (arch) {
            note = `AUDIT_ARCH ${arch}`;
            if (i.code === OP.JEQ) sectionStarts.push({ at: pc + 1 + i.jt, arch });
          }
        } else if (loaded === 0) {
          const section = sectionStarts.filter((s) => s.at <= pc).sort((a, b) => b.at - a.at)[0];
          const name = section ? syscallName(section.arch, i.k) : undefined;
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
