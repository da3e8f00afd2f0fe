/**
 * A tiny assembler for seccomp BPF with symbolic, forward-only labels.
 *
 * Why: a conditional BPF jump has 8-bit offsets (at most 255 instructions
 * ahead), but a large allow-list puts many targets further away than that.
 * The compiler writes code as if jumps could reach anywhere; `assemble()`
 * lays the program out and, for each conditional branch that cannot reach its
 * target, places an unconditional `ja` (32-bit offset) right after the jump
 * and points the branch at it. Inserting trampolines pushes other targets
 * further away, so layout repeats until nothing more is needed (it only ever
 * grows, so it ends).
 */
import { NookError } from '../../lib/errors.js';
import { OP, type SockFilter } from './bpf.js';

export class Label {
  /** index of the node it was bound before; -1 while unbound */
  node = -1;
  constructor(readonly name: string) {}
}

/** Where a conditional branch goes: a label, or simply on to the next instruction. */
export type Branch = Label | 'next';

type Node =
  | { kind: 'plain'; ins: SockFilter }
  | { kind: 'cond'; code: number; k: number; jt: Branch; jf: Branch }
  | { kind: 'ja'; target: Label };

export type Condition = 'jeq' | 'jgt' | 'jge' | 'jset';

const CONDITION_CODES: Readonly<Record<Condition, number>> = {
  jeq: OP.JEQ,
  jgt: OP.JGT,
  jge: OP.JGE,
  jset: OP.JSET,
};

export class Assembler {
  private readonly nodes: Node[] = [];
  private labelCount = 0;

  label(name = 'L'): Label {
    this.labelCount += 1;
    return new Label(`${name}${this.labelCount}`);
  }

  /** The next instruction emitted is the label's target. */
  bind(label: Label): void {
    if (label.node !== -1) throw new Error(`assembler: label ${label.name} bound twice`);
    label.node = this.nodes.length;
  }

  /** A = 32-bit word at `offset` of struct seccomp_data. */
  load(offset: number): void {
    this.nodes.push({ kind: 'plain', ins: { code: OP.LD_ABS, jt: 0, jf: 0, k: offset } });
  }

  and(mask: number): void {
    this.nodes.push({ kind: 'plain', ins: { code: OP.AND, jt: 0, jf: 0, k: mask >>> 0 } });
  }

  ret(value: number): void {
    this.nodes.push({ kind: 'plain', ins: { code: OP.RET, jt: 0, jf: 0, k: value >>> 0 } });
  }

  /** if (A <cond> k) goto jt else goto jf */
  jump(cond: Condition, k: number, jt: Branch, jf: Branch): void {
    this.nodes.push({ kind: 'cond', code: CONDITION_CODES[cond], k: k >>> 0, jt, jf });
  }

  goto(target: Label): void {
    this.nodes.push({ kind: 'ja', target });
  }

  get length(): number {
    return this.nodes.length;
  }

  assemble(): SockFilter[] {
    const nodes = this.nodes;
    const targetNode = (label: Label, from: number): number => {
      if (label.node === -1) throw new Error(`assembler: label ${label.name} never bound`);
      if (label.node <= from) throw new Error(`assembler: label ${label.name} is not ahead of its jump (BPF jumps only forward)`);
      if (label.node >= nodes.length) throw new Error(`assembler: label ${label.name} points past the end of the program`);
      return label.node;
    };
    // Per conditional node: does its true/false branch go through a trampoline?
    const viaT = new Array<boolean>(nodes.length).fill(false);
    const viaF = new Array<boolean>(nodes.length).fill(false);
    const addr = new Array<number>(nodes.length + 1).fill(0);

    const layout = (): void => {
      for (let i = 0; i < nodes.length; i += 1) {
        addr[i + 1] = addr[i]! + 1 + (viaT[i] ? 1 : 0) + (viaF[i] ? 1 : 0);
      }
    };
    const branchAddress = (branch: Branch, i: number): number => (branch === 'next' ? addr[i + 1]! : addr[targetNode(branch, i)]!);

    for (;;) {
      layout();
      let grew = false;
      nodes.forEach((node, i) => {
        if (node.kind !== 'cond') return;
        const base = addr[i]! + 1;
        if (!viaT[i] && branchAddress(node.jt, i) - base > 255) {
          viaT[i] = true;
          grew = true;
        }
        if (!viaF[i] && branchAddress(node.jf, i) - base > 255) {
          viaF[i] = true;
          grew = true;
        }
      });
      if (!grew) break;
    }

    const out: SockFilter[] = [];
    nodes.forEach((node, i) => {
      const here = addr[i]!;
      if (node.kind === 'plain') {
        out.push({ ...node.ins });
      } else if (node.kind === 'ja') {
        out.push({ code: OP.JA, jt: 0, jf: 0, k: addr[targetNode(node.target, i)]! - (here + 1) });
      } else {
        let slot = here + 1;
        const stubs: SockFilter[] = [];
        const offsetOf = (branch: Branch, viaStub: boolean): number => {
          const target = branchAddress(branch, i);
          if (!viaStub) return target - (here + 1);
          const stubAt = slot;
          slot += 1;
          stubs.push({ code: OP.JA, jt: 0, jf: 0, k: target - (stubAt + 1) });
          return stubAt - (here + 1);
        };
        const jt = offsetOf(node.jt, viaT[i]!);
        const jf = offsetOf(node.jf, viaF[i]!);
        out.push({ code: node.code, jt, jf, k: node.k }, ...stubs);
      }
    });
    if (out.length > 0xffff) throw new NookError(`seccomp: program of ${out.length} instructions is too long`);
    return out;
  }
}
