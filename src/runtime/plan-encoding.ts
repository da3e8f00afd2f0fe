/**
 * The executor plan on the wire: "<length>\n" followed by NUL-terminated
 * tokens, in a fixed order, with a count before every list. Trivial and safe
 * to parse in C (helpers/nook-exec.c, `decode_plan`), no JSON parser there.
 * The order below and the C decoder must change together; `nook-exec
 * --decode` prints a plan back as JSON for the round-trip tests.
 *
 * Optional strings are encoded as "" (no path, helper or file is ever empty),
 * booleans as "0"/"1", numbers in decimal, capability masks and rlimits as
 * unsigned 64-bit decimals.
 */
import { NookError } from '../lib/errors.js';
import type { ExecutorPlan, IdMapEntry, PlanOp, PortForward } from './plan.js';

export const PLAN_MAGIC = 'nook-plan/1';

/** runc's default umask for the container's process. */
export const DEFAULT_UMASK = 0o022;

const U64_MAX = (1n << 64n) - 1n;

class TokenWriter {
  readonly tokens: string[] = [];

  str(value: string, what: string): void {
    if (value.includes('\0')) throw new NookError(`${what} contains a NUL byte, which the kernel cannot take`);
    this.tokens.push(value);
  }

  optStr(value: string | null | undefined, what: string): void {
    if (value === '') throw new NookError(`${what} is empty`);
    this.str(value ?? '', what);
  }

  bool(value: boolean | undefined): void {
    this.tokens.push(value ? '1' : '0');
  }

  uint(value: number, what: string, max = 0xffffffff): void {
    if (!Number.isInteger(value) || value < 0 || value > max) throw new NookError(`${what} must be an integer between 0 and ${max}, not ${value}`);
    this.tokens.push(String(value));
  }

  int(value: number, what: string): void {
    if (!Number.isInteger(value)) throw new NookError(`${what} must be an integer, not ${value}`);
    this.tokens.push(String(value));
  }

  u64(value: bigint | number | string, what: string): void {
    let big: bigint;
    try {
      big = BigInt(value);
    } catch {
      throw new NookError(`${what} is not a number: ${String(value)}`);
    }
    if (big < 0n || big > U64_MAX) throw new NookError(`${what} is out of range: ${String(value)}`);
    this.tokens.push(big.toString());
  }

  strList(values: readonly string[], what: string): void {
    this.tokens.push(String(values.length));
    values.forEach((v, i) => this.str(v, `${what}[${i}]`));
  }

  idMap(entries: readonly IdMapEntry[], what: string): void {
    this.tokens.push(String(entries.length));
    for (const e of entries) {
      this.uint(e.inside, `${what} inside`);
      this.uint(e.outside, `${what} outside`);
      this.uint(e.count, `${what} count`);
    }
  }
}

function writeOp(w: TokenWriter, op: PlanOp): void {
  w.str(op.op, 'op');
  switch (op.op) {
    case 'set-root':
    case 'chdir':
    case 'pivot-root':
    case 'mask':
    case 'readonly':
      w.str(op.path, `${op.op} path`);
      return;
    case 'mount':
      w.str(op.source, 'mount source');
      w.str(op.target, 'mount target');
      w.str(op.fstype, 'mount fstype');
      w.u64(op.flags, 'mount flags');
      w.str(op.data, 'mount data');
      w.bool(op.inRoot);
      w.str(op.ensure, 'mount ensure');
      w.bool(op.keepLockedFlags);
      w.bool(op.optional);
      return;
    case 'mkdir':
      w.str(op.path, 'mkdir path');
      w.uint(op.mode, 'mkdir mode', 0o7777);
      w.bool(op.inRoot);
      return;
    case 'symlink':
      w.str(op.target, 'symlink target');
      w.str(op.path, 'symlink path');
      w.bool(op.inRoot);
      return;
    case 'write-file':
      w.str(op.path, 'write-file path');
      w.str(op.content, `content of ${op.path}`);
      w.bool(op.inRoot);
      return;
    case 'spawn-mount':
      if (op.args.length === 0) throw new NookError('spawn-mount needs a command');
      w.strList(op.args, 'spawn-mount args');
      w.str(op.target, 'spawn-mount target');
      return;
    case 'umount':
      w.str(op.target, 'umount target');
      w.u64(op.flags, 'umount flags');
      return;
    case 'sethostname':
      w.str(op.name, 'hostname');
      return;
    case 'sync':
      w.str(op.name, 'sync name');
      return;
    case 'loopback-up':
      return;
    default: {
      const unknown: never = op;
      throw new NookError(`unknown plan operation ${JSON.stringify(unknown)}`);
    }
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function writePortForwards(w: TokenWriter, plan: ExecutorPlan): void {
  const forwards: readonly PortForward[] = plan.portForwards ?? [];
  w.tokens.push(String(forwards.length));
  for (const f of forwards) {
    const what = `port forward ${f.hostIp}:${f.hostPort} -> ${f.containerIp}:${f.containerPort}`;
    if (!IPV4.test(f.hostIp) || !IPV4.test(f.containerIp)) throw new NookError(`${what}: addresses must be IPv4`);
    w.str(f.hostIp, what);
    w.uint(f.hostPort, `${what}: host port`, 65535);
    w.str(f.containerIp, what);
    w.uint(f.containerPort, `${what}: container port`, 65535);
    if (f.hostPort === 0 || f.containerPort === 0) throw new NookError(`${what}: ports must be resolved (1-65535)`);
  }
}

function writeOps(w: TokenWriter, ops: readonly PlanOp[]): void {
  w.tokens.push(String(ops.length));
  for (const op of ops) writeOp(w, op);
}

/** The plan as the executor reads it on fd 4 (and `nook-exec --decode` on stdin). */
export function encodePlan(plan: ExecutorPlan): Buffer {
  const w = new TokenWriter();
  w.str(PLAN_MAGIC, 'magic');
  w.bool(plan.trace);

  const user = plan.user;
  w.str(user.mode, 'user namespace mode');
  if (user.mode === 'join') {
    w.optStr(user.path, 'user namespace path');
  } else if (user.mode === 'new') {
    w.idMap(user.uidMap, 'uid map');
    w.idMap(user.gidMap, 'gid map');
    w.optStr(user.uidHelper, 'newuidmap path');
    w.optStr(user.gidHelper, 'newgidmap path');
    w.str(user.setgroups, 'setgroups');
  }
  w.optStr(plan.joinCgroup, 'joinCgroup');
  w.bool(plan.hold);
  w.bool(plan.holdBeforeNamespaces ?? false);
  w.bool(plan.watchOom ?? false);
  if (plan.startFifo !== undefined && !plan.hold) throw new NookError('startFifo needs hold');
  w.optStr(plan.startFifo, 'startFifo');
  writePortForwards(w, plan);

  w.tokens.push(String(plan.namespaces.length));
  for (const ns of plan.namespaces) {
    w.str(ns.type, 'namespace type');
    w.optStr(ns.path, `${ns.type} namespace path`);
  }
  writeOps(w, plan.outerOps);
  writeOps(w, plan.innerOps);

  const p = plan.process;
  if (p.args.length === 0) throw new NookError('the container has no command to run');
  w.strList(p.args, 'process args');
  w.strList(p.env, 'process env');
  w.str(p.cwd, 'process cwd');
  w.uint(p.uid, 'uid');
  w.uint(p.gid, 'gid');
  w.tokens.push(String(p.additionalGids.length));
  p.additionalGids.forEach((gid) => w.uint(gid, 'additional gid'));
  w.bool(p.capabilities !== null);
  if (p.capabilities) {
    const c = p.capabilities;
    w.u64(c.bounding, 'bounding capabilities');
    w.u64(c.effective, 'effective capabilities');
    w.u64(c.permitted, 'permitted capabilities');
    w.u64(c.inheritable, 'inheritable capabilities');
    w.u64(c.ambient, 'ambient capabilities');
  }
  w.bool(p.noNewPrivileges);
  const seccomp = p.seccompFilter ?? '';
  if (!/^([0-9a-fA-F]{16})*$/.test(seccomp)) throw new NookError('the seccomp filter is not hex of whole 8-byte instructions');
  w.str(seccomp, 'seccomp filter');
  w.tokens.push(String(p.rlimits.length));
  for (const r of p.rlimits) {
    w.uint(r.resource, 'rlimit resource', 64);
    w.u64(r.soft, 'rlimit soft');
    w.u64(r.hard, 'rlimit hard');
  }
  if (p.oomScoreAdj === null) w.tokens.push('');
  else w.int(p.oomScoreAdj, 'oomScoreAdj');
  w.bool(p.searchPath);
  w.bool(p.terminal);
  w.uint(p.consoleSize?.rows ?? 0, 'console rows', 0xffff);
  w.uint(p.consoleSize?.cols ?? 0, 'console columns', 0xffff);
  const umask = p.umask === undefined ? DEFAULT_UMASK : p.umask;
  if (umask === null) w.tokens.push('-1');
  else w.uint(umask, 'umask', 0o777);

  const m = plan.monitor;
  w.str(m.mode, 'monitor mode');
  w.optStr(m.logPath, 'log path');
  w.optStr(m.exitFile, 'exit file');
  w.optStr(m.pidFile, 'pid file');
  w.strList(m.onExit ?? [], 'onExit');
  w.bool(m.dieWithParent);
  w.optStr(m.consoleSocket, 'console socket');
  w.bool(m.terminalStdin);
  if (m.mode === 'handoff' && p.terminal && !m.consoleSocket) throw new NookError('a terminal in handoff mode needs a console socket');
  if (plan.innerOps.some((op) => op.op === 'sync') && !plan.hold) throw new NookError('a sync operation needs hold');
  if (plan.outerOps.some((op) => op.op === 'sync')) throw new NookError('sync is an innerOps operation');
  if (plan.portForwards?.length) {
    // the setup process forwards from the container's own network namespace, for the container's whole life
    if (m.mode === 'handoff') throw new NookError('port forwards need a monitor that stays (not handoff)');
    if (!plan.namespaces.some((ns) => ns.type === 'net' && !ns.path)) throw new NookError('port forwards need a new network namespace');
  }
  w.str('end', 'end');

  const body = Buffer.from(`${w.tokens.join('\0')}\0`, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}\n`), body]);
}
