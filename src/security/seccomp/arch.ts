/**
 * The architectures nook's seccomp compiler knows, and their names in the
 * three vocabularies that meet here: the kernel's AUDIT_ARCH_* tokens (what a
 * filter sees in seccomp_data.arch), libseccomp's SCMP_ARCH_* names (OCI and
 * Docker profiles), and Go's GOARCH names (Docker's includes/excludes.arches).
 */
import { NookError } from '../../lib/errors.js';

/** x86 is i386, which an x86_64 kernel runs as a compat ABI. */
export type SeccompArch = 'x86_64' | 'x86' | 'aarch64';

/** EM_* machine | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000), from <linux/audit.h>. */
export const AUDIT_ARCH: Readonly<Record<SeccompArch, number>> = {
  x86_64: 0xc000003e,
  x86: 0x40000003,
  aarch64: 0xc00000b7,
};

export const SCMP_ARCH: Readonly<Record<SeccompArch, string>> = {
  x86_64: 'SCMP_ARCH_X86_64',
  x86: 'SCMP_ARCH_X86',
  aarch64: 'SCMP_ARCH_AARCH64',
};

/** Arguments are 64 bits wide only on 64-bit ABIs; on i386 only the low halves mean anything. */
export function is64Bit(arch: SeccompArch): boolean {
  return arch !== 'x86';
}

/**
 * Architectures whose processes can run on a kernel of `native`: the filter
 * may have a section for each. The x32 ABI (x86_64 numbers | 0x40000000) is
 * not one of them: nook always refuses x32 system calls (see compiler.ts), and
 * 32-bit ARM on aarch64 has no table here, so such processes meet the
 * bad-architecture action.
 */
export const COMPATIBLE_ARCHES: Readonly<Record<SeccompArch, readonly SeccompArch[]>> = {
  x86_64: ['x86_64', 'x86'],
  x86: ['x86'],
  aarch64: ['aarch64'],
};

/** Go's GOARCH for the host arch, which Docker profiles match in includes/excludes.arches. */
export const GO_ARCH: Readonly<Record<SeccompArch, string>> = {
  x86_64: 'amd64',
  x86: '386',
  aarch64: 'arm64',
};

export function archFromScmpName(name: string): SeccompArch | undefined {
  for (const [arch, scmp] of Object.entries(SCMP_ARCH) as [SeccompArch, string][]) {
    if (scmp === name) return arch;
  }
  return undefined;
}

/** The seccomp architecture of the machine nook runs on. */
export function hostSeccompArch(nodeArch: string = process.arch): SeccompArch {
  switch (nodeArch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    case 'ia32':
      return 'x86';
    default:
      throw new NookError(`seccomp: unsupported host architecture "${nodeArch}" (nook supports x86_64 and aarch64)`);
  }
}

/** Parses "x86_64", "amd64", "aarch64", "arm64", "x86", "i386", or an SCMP_ARCH_* name. */
export function parseSeccompArch(value: string): SeccompArch {
  const v = value.trim().toLowerCase();
  if (v === 'x86_64' || v === 'amd64' || v === 'x64' || v === 'scmp_arch_x86_64') return 'x86_64';
  if (v === 'aarch64' || v === 'arm64' || v === 'scmp_arch_aarch64') return 'aarch64';
  if (v === 'x86' || v === 'i386' || v === '386' || v === 'ia32' || v === 'scmp_arch_x86') return 'x86';
  throw new NookError(`seccomp: unknown architecture "${value}" (known: x86_64, aarch64, x86)`);
}
