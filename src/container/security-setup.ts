/**
 * The container's capabilities and seccomp profile, from --cap-add,
 * --cap-drop, --privileged and --security-opt, in OCI form.
 */
import { readFileSync } from 'node:fs';
import { NookError, wrapError } from '../lib/errors.js';
import type { OciProcess, OciSeccomp } from '../runtime/spec.js';
import { resolveCapabilities, readHostLastCap } from '../security/capabilities.js';
import { defaultSeccompConfig, seccompFromProfileText } from '../security/seccomp/profiles.js';
import type { ContainerOptions } from './options.js';

export interface ContainerSecurity {
  capabilities: NonNullable<OciProcess['capabilities']>;
  seccomp: OciSeccomp | undefined;
}

export function resolveSecurity(options: ContainerOptions, imageUser: string | undefined): ContainerSecurity {
  let lastCap: number | undefined;
  try {
    lastCap = readHostLastCap();
  } catch {
    lastCap = undefined;
  }
  const capabilities = resolveCapabilities({
    add: options.capAdd,
    drop: options.capDrop,
    privileged: options.privileged,
    user: options.user ?? imageUser ?? '',
    ...(lastCap !== undefined ? { lastCap } : {}),
  });

  let seccompChoice: string | undefined;
  for (const opt of options.securityOpt) {
    const [key, value] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : opt.split(':', 2);
    if (key === 'seccomp') seccompChoice = value;
    else if (key === 'no-new-privileges' || opt === 'no-new-privileges') continue;
    else if (key === 'label' || key === 'apparmor') continue; // no SELinux/AppArmor profiles applied by nook; accepted for compatibility
    else throw new NookError(`unknown --security-opt "${opt}" (known: seccomp=unconfined|FILE.json, no-new-privileges)`);
  }
  let seccomp: OciSeccomp | undefined;
  if (options.privileged || seccompChoice === 'unconfined') {
    seccomp = undefined;
  } else if (seccompChoice) {
    seccomp = loadProfile(seccompChoice, capabilities.bounding ?? []);
  } else {
    seccomp = defaultSeccompConfig({ capabilities: capabilities.bounding ?? [] }) as OciSeccomp;
  }
  return { capabilities, seccomp };
}

function loadProfile(path: string, capabilities: string[]): OciSeccomp {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw wrapError(`seccomp profile ${path}`, error);
  }
  return seccompFromProfileText(text, path, { capabilities }) as OciSeccomp;
}
