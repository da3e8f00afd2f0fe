import test from 'ava';
import { buildSpec, mergeEnv, parseEnvFile, parseUlimit, type SpecInputs } from '../../src/container/spec-builder.js';
import { resolveUser } from '../../src/container/users.js';
import { parseVolume, toContainerOptions } from '../../src/cli/commands/container-flags.js';

const passwd = 'root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n';
const group = 'root:x:0:\ntester:x:1000:\nwheel:x:10:tester\nnogroup:x:65534:\n';
const files: Record<string, string> = { '/etc/passwd': passwd, '/etc/group': group };
const reader = (p: string) => files[p] ?? null;

const baseFlags = {
  env: [], envFile: [], volume: [], tmpfs: [], readOnly: false, ulimit: [], capAdd: [], capDrop: [], privileged: false,
  securityOpt: [], publish: [], init: false, tty: false, interactive: false,
};

function inputs(over: Partial<SpecInputs> = {}, flags: Record<string, unknown> = {}, command: string[] = []): SpecInputs {
  return {
    options: toContainerOptions('localhost/busybox', command, { ...baseFlags, ...flags }),
    imageConfig: { Env: ['PATH=/usr/bin:/bin', 'A=image'], Cmd: ['sh'], WorkingDir: '/work' },
    rootPath: '/c/merged',
    hostname: 'abc',
    uidMappings: [],
    gidMappings: [],
    generatedFiles: { '/etc/hosts': '/c/userdata/hosts' },
    readImageFile: reader,
    capabilities: { bounding: ['CAP_CHOWN'] },
    seccomp: undefined,
    network: { kind: 'new' },
    envFileEntries: [],
    ...over,
  };
}

test('users resolve against the container\'s own files', (t) => {
  t.deepEqual(resolveUser('tester', reader), { uid: 1000, gid: 1000, additionalGids: [10], home: '/home/tester' });
  t.deepEqual(resolveUser('1000:wheel', reader), { uid: 1000, gid: 10, additionalGids: [], home: '/home/tester' });
  t.is(resolveUser('4242', reader).uid, 4242);
  t.is(resolveUser('', reader).uid, 0);
  t.throws(() => resolveUser('ghost', reader), { message: /unable to find user ghost/ });
  t.throws(() => resolveUser('tester:ghosts', reader), { message: /unable to find group ghosts/ });
});

test('env: later sources override earlier ones by name', (t) => {
  t.deepEqual(mergeEnv(['A=1', 'B=2'], ['A=3']), ['B=2', 'A=3']);
  t.deepEqual(parseEnvFile('# comment\nX=1\n\nY=two words\n'), ['X=1', 'Y=two words']);
});

test('ulimits parse as podman\'s, and bad ones are one-line errors', (t) => {
  t.deepEqual(parseUlimit('nofile=1024:2048'), { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 });
  t.deepEqual(parseUlimit('core=-1'), { type: 'RLIMIT_CORE', soft: -1, hard: -1 });
  t.throws(() => parseUlimit('nofile=10:5'), { message: /soft limit above hard/ });
  t.throws(() => parseUlimit('bogus=1'), { message: /invalid --ulimit/ });
});

test('volumes need absolute paths on both sides', (t) => {
  t.deepEqual(parseVolume('/a:/b:ro'), { source: '/a', destination: '/b', readonly: true });
  t.throws(() => parseVolume('data:/b'), { message: /named volumes/ });
  t.throws(() => parseVolume('/a'), { message: /expected/ });
});

test('the spec takes Cmd, Env and WorkingDir from the image and flags over them', (t) => {
  const spec = buildSpec(inputs({}, { env: ['A=flag'], user: 'tester' }));
  t.deepEqual(spec.process!.args, ['sh']);
  t.is(spec.process!.cwd, '/work');
  t.true(spec.process!.env!.includes('A=flag'));
  t.false(spec.process!.env!.includes('A=image'));
  t.true(spec.process!.env!.includes('HOME=/home/tester'));
  t.true(spec.process!.env!.includes('HOSTNAME=abc'));
  t.is(spec.process!.user.uid, 1000);
  t.true(spec.process!.noNewPrivileges);
  t.deepEqual(spec.linux!.namespaces!.map((n) => n.type), ['user', 'mount', 'pid', 'uts', 'ipc', 'cgroup', 'network']);
  t.true(spec.mounts!.some((m) => m.destination === '/etc/hosts' && m.source === '/c/userdata/hosts'));
  t.true(spec.linux!.maskedPaths!.includes('/proc/kcore'));
});

test('a command replaces Cmd and --entrypoint replaces Entrypoint', (t) => {
  t.deepEqual(buildSpec(inputs({}, {}, ['echo', 'hi'])).process!.args, ['echo', 'hi']);
  const withEntry = buildSpec(inputs({ imageConfig: { Entrypoint: ['/init'], Cmd: ['x'] } }, { entrypoint: '["/bin/env","-i"]' }));
  t.deepEqual(withEntry.process!.args, ['/bin/env', '-i']);
  t.throws(() => buildSpec(inputs({ imageConfig: {} })), { message: /no command given/ });
});

test('--network host shares the host network namespace; privileged unmasks', (t) => {
  const spec = buildSpec(inputs({ network: { kind: 'host' } }, { privileged: true }));
  t.false(spec.linux!.namespaces!.some((n) => n.type === 'network'));
  t.deepEqual(spec.linux!.maskedPaths, []);
  t.false(spec.process!.noNewPrivileges);
});
