/**
 * seccomp for nook: profiles (nook's default, Docker/podman/OCI JSON files)
 * -> OCI linux.seccomp (stored in the container's spec) -> a BPF program the
 * executor loads with seccomp(2) right before execve.
 *
 *   const config = await seccompConfigForOption(opt, { capabilities: caps.bounding });
 *   plan.process.seccompFilter = config ? compileSeccomp(config).hex : null;
 */
export { compileSeccomp, actionValue, type CompiledSeccomp } from './compiler.js';
export { defaultSeccompConfig, DEFAULT_DENIALS, type Denial, type DefaultProfileOptions } from './default-profile.js';
export { loadSeccompProfile, dockerProfileToOci, seccompFromProfileText, seccompConfigForOption, type ProfileContext } from './profiles.js';
export { disassemble } from './disassemble.js';
export { decodeFilter, encodeFilter, describeReturn, type SockFilter } from './bpf.js';
export { hostSeccompArch, parseSeccompArch, type SeccompArch } from './arch.js';
export { parseLinuxSeccomp, type LinuxSeccomp, type LinuxSyscall, type LinuxSeccompArg, type SeccompAction, type SeccompOperator } from './oci.js';
export { syscallTables } from './syscall-tables.js';
