/**
 * The committed tables (syscall numbers, capability numbers) against this
 * machine's kernel headers, through the C compiler: what the kernel's own
 * headers say is what nook compiles into filters and capability masks.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { requireHostTool } from '../helpers/host-tools.js';
import { CAPABILITY_NAMES } from '../../src/security/capabilities.js';
import { hostSeccompArch } from '../../src/security/seccomp/arch.js';
import { syscallTables } from '../../src/security/seccomp/syscall-tables.js';

const work = mkdtempSync(join(tmpdir(), 'nook-tables-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** Compiles and runs a C program that prints "NAME VALUE" lines for the macros it knows. */
async function macroValues(header: string, macros: { name: string; macro: string }[]): Promise<Map<string, number>> {
  const lines = macros.map(({ name, macro }) => `#ifdef ${macro}\n  printf("%s %ld\\n", "${name}", (long)(${macro}));\n#endif`);
  const source = `#include <stdio.h>\n#include <${header}>\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`;
  const base = join(work, header.replace(/\W/g, '_'));
  writeFileSync(`${base}.c`, source);
  await execa(requireHostTool('gcc'), ['-o', base, `${base}.c`]);
  const { stdout } = await execa(base);
  return new Map(stdout.split('\n').filter(Boolean).map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));
}

test('system call numbers of the host ABI match <sys/syscall.h>', async (t) => {
  const arch = hostSeccompArch();
  const table = syscallTables[arch];
  const values = await macroValues('sys/syscall.h', Object.keys(table).map((name) => ({ name, macro: `__NR_${name}` })));
  t.true(values.size > 300, `the headers know ${values.size} of the table's names`);
  for (const [name, nr] of values) t.is(table[name], nr, name);
});

test('i386 numbers match <asm/unistd_32.h>', async (t) => {
  if (hostSeccompArch() !== 'x86_64') return t.pass();
  const values = await macroValues('asm/unistd_32.h', Object.keys(syscallTables.x86).map((name) => ({ name, macro: `__NR_${name}` })));
  t.true(values.size > 350);
  for (const [name, nr] of values) t.is(syscallTables.x86[name], nr, name);
});

test('capability numbers match <linux/capability.h>', async (t) => {
  const values = await macroValues('linux/capability.h', CAPABILITY_NAMES.map((name) => ({ name, macro: `CAP_${name}` })));
  t.true(values.size >= 41);
  CAPABILITY_NAMES.forEach((name, i) => t.is(values.get(name), i, name));
});
