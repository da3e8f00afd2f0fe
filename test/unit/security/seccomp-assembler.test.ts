import test from 'ava';
import { Assembler } from '../../../src/security/seccomp/assembler.js';
import { OP } from '../../../src/security/seccomp/bpf.js';
import { checkFilter, runFilter } from './bpf-interpreter.js';

/** A program that tests nr against `k` and jumps over `gap` instructions when equal. */
function farJump(gap: number, k = 7) {
  const asm = new Assembler();
  const far = asm.label('far');
  asm.load(0);
  asm.jump('jeq', k, far, 'next');
  for (let i = 0; i < gap; i += 1) asm.ret(0x00050000 | (i % 4000 + 1));
  asm.bind(far);
  asm.ret(0x7fff0000);
  return asm.assemble();
}

test('near jumps are encoded directly', (t) => {
  const prog = farJump(255);
  checkFilter(prog);
  t.is(prog.length, 258);
  t.deepEqual(prog[1], { code: OP.JEQ, jt: 255, jf: 0, k: 7 });
  t.false(prog.some((i) => i.code === OP.JA));
  t.is(runFilter(prog, { nr: 7, arch: 0 }), 0x7fff0000);
  t.is(runFilter(prog, { nr: 8, arch: 0 }), 0x00050001);
});

test('a jump one past the reach of 8 bits goes through a ja trampoline', (t) => {
  const prog = farJump(256);
  checkFilter(prog);
  t.is(prog.length, 260);
  t.deepEqual(prog[1], { code: OP.JEQ, jt: 0, jf: 1, k: 7 });
  t.deepEqual(prog[2], { code: OP.JA, jt: 0, jf: 0, k: 256 });
  t.is(runFilter(prog, { nr: 7, arch: 0 }), 0x7fff0000);
  t.is(runFilter(prog, { nr: 8, arch: 0 }), 0x00050001);
});

test('both branches far: two trampolines, and each goes to its own target', (t) => {
  const asm = new Assembler();
  const yes = asm.label('yes');
  const no = asm.label('no');
  asm.load(0);
  asm.jump('jgt', 100, yes, no);
  for (let i = 0; i < 300; i += 1) asm.ret(1);
  asm.bind(no);
  asm.ret(2);
  for (let i = 0; i < 300; i += 1) asm.ret(1);
  asm.bind(yes);
  asm.ret(3);
  const prog = asm.assemble();
  checkFilter(prog);
  t.deepEqual(prog[1], { code: OP.JGT, jt: 0, jf: 1, k: 100 });
  t.is(prog[2]!.code, OP.JA);
  t.is(prog[3]!.code, OP.JA);
  t.is(runFilter(prog, { nr: 101, arch: 0 }), 3);
  t.is(runFilter(prog, { nr: 100, arch: 0 }), 2);
});

test('trampolines that push other jumps out of reach are handled too', (t) => {
  // Many jumps to one far label, each just within reach before trampolines are added.
  const asm = new Assembler();
  const end = asm.label('end');
  asm.load(0);
  for (let i = 0; i < 200; i += 1) asm.jump('jeq', i, end, 'next');
  for (let i = 0; i < 60; i += 1) asm.ret(0x00050001);
  asm.bind(end);
  asm.ret(0x7fff0000);
  const prog = asm.assemble();
  checkFilter(prog);
  for (let nr = 0; nr < 200; nr += 1) t.is(runFilter(prog, { nr, arch: 0 }), 0x7fff0000, `nr ${nr}`);
  t.is(runFilter(prog, { nr: 200, arch: 0 }), 0x00050001);
});

test('labels must be bound ahead of their jumps', (t) => {
  const asm = new Assembler();
  const back = asm.label('back');
  asm.bind(back);
  asm.load(0);
  asm.jump('jeq', 1, back, 'next');
  asm.ret(0);
  t.throws(() => asm.assemble(), { message: /not ahead of its jump/ });

  const unbound = new Assembler();
  unbound.load(0);
  unbound.jump('jeq', 1, unbound.label('never'), 'next');
  unbound.ret(0);
  t.throws(() => unbound.assemble(), { message: /never bound/ });
});
