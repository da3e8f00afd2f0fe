import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compiledSeccompHex } from '../../src/security/seccomp/cache.js';
import { compileSeccomp } from '../../src/security/seccomp/compiler.js';
import { defaultSeccompConfig } from '../../src/security/seccomp/default-profile.js';

test('the cache returns what the compiler makes, and reads it back from the run root', async (t) => {
  const runRoot = mkdtempSync(join(tmpdir(), 'nook-seccomp-'));
  t.teardown(() => rmSync(runRoot, { recursive: true, force: true }));
  const config = defaultSeccompConfig({ capabilities: ['CAP_CHOWN'] });
  const first = await compiledSeccompHex(config, runRoot);
  t.is(first, compileSeccomp(config).hex);
  const [file] = readdirSync(join(runRoot, 'seccomp'));
  t.truthy(file);
  // The cached file is what is used: a different config gets a different entry.
  writeFileSync(join(runRoot, 'seccomp', file!), 'cafe');
  t.is(await compiledSeccompHex(config, runRoot), 'cafe');
  t.not(await compiledSeccompHex(defaultSeccompConfig({ capabilities: ['CAP_SYS_ADMIN'] }), runRoot), 'cafe');
  t.is(readdirSync(join(runRoot, 'seccomp')).length, 2);
});
