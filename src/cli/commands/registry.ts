/**
 * pull, login, logout: the commands that talk to registries. Flags as podman's.
 * The library is imported inside each action (start-up latency).
 */
import { Command, Option } from 'commander';
import type { GlobalOptions } from '../output.js';
import type { Progress } from '../../lib/progress.js';

/**
 * `--tls-verify` takes an optional value, as in podman (`--tls-verify=false`).
 * Commander would swallow the next word after a bare `--tls-verify`, so a
 * value that is not a boolean is handed back as the first argument.
 */
function tlsVerifyOption(): Option {
  return new Option('--tls-verify [bool]', 'require HTTPS and verify certificates (default: true unless registries.conf marks the registry insecure)');
}

function splitTlsVerify(value: unknown, args: string[]): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  args.unshift(String(value));
  return true;
}

async function commonLibrary() {
  const [{ NookError }] = await Promise.all([import('../../lib/errors.js')]);
  return { NookError };
}

/** Without a registry argument, login and logout mean the first unqualified-search registry, as in podman. */
async function defaultRegistry(): Promise<string> {
  const { loadRegistriesConfig, searchRegistries } = await import('../../image/registry/registries-conf.js');
  return searchRegistries(loadRegistriesConfig())[0] ?? 'docker.io';
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal; with `hidden`, without echoing it (passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  if (!hidden) {
    const { createInterface } = await import('node:readline');
    const rl = createInterface({ input: stdin, terminal: false });
    try {
      for await (const line of rl) return line;
      return '';
    } finally {
      rl.close();
    }
  }
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * Progress for logs and pipes: nothing while a task runs, one line when it
 * ends, with its size and rate ("Copying blob 0123456789ab done: 14.5MiB in
 * 0.8s, 18.1MiB/s").
 */
function finishedLines(formatBytes: (n: number) => string): Progress {
  return {
    step: (message) => process.stderr.write(`${message}\n`),
    task(label, total) {
      const started = Date.now();
      let current = 0;
      let ended = false;
      const end = (note: string) => {
        if (ended) return;
        ended = true;
        const seconds = (Date.now() - started) / 1000;
        const bytes = current || total || 0;
        const detail = bytes > 0 ? `: ${formatBytes(bytes)} in ${seconds.toFixed(1)}s${seconds > 0.05 ? `, ${formatBytes(Math.round(bytes / seconds))}/s` : ''}` : '';
        process.stderr.write(`${label} ${note}${current > 0 ? detail : ''}\n`);
      };
      return {
        update: (n) => void (current = n),
        advance: (n) => void (current += n),
        finish: (note) => end(note ?? 'done'),
        fail: (note) => end(note ?? 'failed'),
      };
    },
  };
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('Download an image from a registry')
    .argument('[image]', 'image reference: busybox, quay.io/org/app:tag, host:5000/app@sha256:...')
    .option('--platform <os/arch[/variant]>', "platform to choose from a multi-arch image (default: the host's)")
    .option('--arch <arch>', 'architecture to choose (overrides the host default)')
    .option('--os <os>', 'operating system to choose (default: linux)')
    .option('--variant <variant>', 'architecture variant to choose (e.g. v7 for arm)')
    .option('--creds <user:password>', 'credentials for the registry (instead of the auth file)')
    .option('--authfile <path>', 'auth file (default: $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json)')
    .addOption(tlsVerifyOption())
    .option('--cert-dir <dir>', 'CA certificates (*.crt) and client certificates (*.cert, *.key) for the registry')
    .option('-q, --quiet', 'print only the image id')
    .addHelpText(
      'after',
      `
Short names (busybox) are looked up in the unqualified-search registries of
registries.conf (default docker.io); mirrors and insecure registries come from
the same file. Layers are downloaded in parallel, verified against their digests,
and an interrupted pull resumes where it stopped. See docs/registries.md.

Examples:
  nook pull busybox
  nook pull --platform linux/arm64 docker.io/library/alpine:3.20
  nook pull --creds user:secret --cert-dir ./certs 127.0.0.1:5000/app@sha256:...`,
    )
    .action(async (image: string | undefined, opts: Record<string, unknown>, cmd: Command) => {
      const args = image === undefined ? [] : [image];
      const tlsVerify = splitTlsVerify(opts.tlsVerify, args);
      const { NookError } = await commonLibrary();
      if (args.length !== 1) throw new NookError(args.length === 0 ? 'pull needs an image name (nook pull busybox)' : `pull takes one image, got: ${args.join(' ')}`);
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const [{ pullImage, parseCreds }, { parsePlatform, hostPlatform }, { createProgress, silentProgress, formatBytes }, { withPullDestination }] = await Promise.all([
        import('../../image/registry/pull.js'),
        import('../../image/registry/platform.js'),
        import('../../lib/progress.js'),
        import('../../image/registry/store-destination.js'),
      ]);
      let platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : undefined;
      if (opts.arch !== undefined || opts.os !== undefined || opts.variant !== undefined) {
        const base = platform ?? hostPlatform();
        platform = parsePlatform(`${(opts.os as string | undefined) ?? base.os}/${(opts.arch as string | undefined) ?? base.architecture}${opts.variant ? `/${String(opts.variant)}` : ''}`);
      }
      const quiet = opts.quiet === true;
      const terminal = process.stderr.isTTY === true;
      // A terminal gets live bars (downloads and unpacking); logs get one line per layer, when it is done.
      const progress = quiet ? silentProgress : terminal ? createProgress() : finishedLines(formatBytes);
      const unpackProgress = terminal && !quiet ? progress : silentProgress;
      const debug = globals.debug === true;
      const credentials = typeof opts.creds === 'string' ? parseCreds(opts.creds) : undefined;
      // Ctrl-C stops the downloads and lets the store release what the pull held; a second one kills.
      const interrupt = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => interrupt.abort(new NookError(`pull interrupted (${signal}); run it again to resume`, { exitCode: signal === 'SIGINT' ? 130 : 143 }));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const result = await withPullDestination({ root: globals.root, runroot: globals.runroot }, unpackProgress, (destination) =>
        pullImage(args[0]!, {
          destination,
          platform,
          credentials,
          authFile: opts.authfile as string | undefined,
          tlsVerify,
          certDir: opts.certDir as string | undefined,
          progress,
          signal: interrupt.signal,
          log: debug ? (line) => process.stderr.write(`debug: ${line}\n`) : undefined,
        }),
      ).finally(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      });
      if (!quiet) for (const warning of result.warnings) process.stderr.write(`WARNING: ${warning}\n`);
      process.stdout.write(`${result.id.replace(/^sha256:/, '')}\n`);
    });

  program
    .command('login')
    .description('Log in to a registry: check the credentials, then store them in the auth file')
    .argument('[registry]', 'registry host[:port], or host/namespace for credentials that apply to one namespace (default: the first unqualified-search registry)')
    .option('-u, --username <name>', 'user name (asked for when not given)')
    .option('-p, --password <password>', 'password (asked for when not given; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--authfile <path>', 'auth file to write (default: $XDG_RUNTIME_DIR/containers/auth.json, else ~/.config/containers/auth.json)')
    .addOption(tlsVerifyOption())
    .option('--cert-dir <dir>', 'CA certificates (*.crt) and client certificates (*.cert, *.key) for the registry')
    .option('--get-login', 'print the user name stored for the registry')
    .addHelpText(
      'after',
      `
The credentials are checked against the registry (/v2/, with its Basic or
token authentication) before they are stored, in the auth.json format podman,
skopeo and docker share (mode 0600).

Examples:
  nook login -u alice quay.io
  echo "$TOKEN" | nook login -u bot --password-stdin ghcr.io`,
    )
    .action(async (registry: string | undefined, opts: Record<string, unknown>, cmd: Command) => {
      const args = registry === undefined ? [] : [registry];
      const tlsVerify = splitTlsVerify(opts.tlsVerify, args);
      const { NookError } = await commonLibrary();
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const { loginRegistry, registryKey } = await import('../../image/registry/login.js');
      const { findCredentials } = await import('../../image/registry/auth-file.js');
      if (args.length > 1) throw new NookError(`login takes one registry, got: ${args.join(' ')}`);
      const key = registryKey(args[0] ?? (await defaultRegistry()));
      const authFile = opts.authfile as string | undefined;
      if (opts.getLogin) {
        const found = findCredentials(key, { authFile });
        if (!found) throw new NookError(`not logged into ${key}`);
        process.stdout.write(`${found.username}\n`);
        return;
      }
      let username = opts.username as string | undefined;
      let password = opts.password as string | undefined;
      if (opts.passwordStdin) {
        if (password !== undefined) throw new NookError('--password and --password-stdin cannot be used together');
        if (username === undefined) throw new NookError('--password-stdin needs --username');
        password = (await readStdin()).replace(/\r?\n$/, '');
      }
      const interactive = process.stdin.isTTY === true;
      if (username === undefined) {
        if (!interactive) throw new NookError('no user name given: use -u (standard input is not a terminal)');
        const previous = findCredentials(key, { authFile })?.username;
        username = (await prompt(previous ? `Username (${previous}): ` : 'Username: ', false)).trim() || previous || '';
      }
      if (password === undefined) {
        if (!interactive) throw new NookError('no password given: use -p or --password-stdin (standard input is not a terminal)');
        password = await prompt('Password: ', true);
      }
      if (!username) throw new NookError('the user name is empty');
      if (!password) throw new NookError('the password is empty');
      const file = await loginRegistry(key, { username, password }, {
        authFile,
        tlsVerify,
        certDir: opts.certDir as string | undefined,
        log: globals.debug ? (line) => process.stderr.write(`debug: ${line}\n`) : undefined,
      });
      if (globals.debug) process.stderr.write(`debug: credentials stored in ${file}\n`);
      process.stdout.write('Login Succeeded!\n');
    });

  program
    .command('logout')
    .description('Remove the credentials stored for a registry')
    .argument('[registry]', 'registry host[:port] (or host/namespace) to forget')
    .option('-a, --all', 'remove the credentials of every registry')
    .option('--authfile <path>', 'auth file to change (default as for login)')
    .action(async (registry: string | undefined, opts: { all?: boolean; authfile?: string }) => {
      const { NookError } = await commonLibrary();
      const { registryKey } = await import('../../image/registry/login.js');
      const { removeCredentials, removeAllCredentials, otherCredentialSources } = await import('../../image/registry/auth-file.js');
      if (opts.all) {
        if (registry !== undefined) throw new NookError('logout --all takes no registry');
        removeAllCredentials({ authFile: opts.authfile });
        process.stdout.write('Removed login credentials for all registries\n');
        return;
      }
      const key = registryKey(registry ?? (await defaultRegistry()));
      const { removed } = removeCredentials(key, { authFile: opts.authfile });
      if (!removed) {
        const others = otherCredentialSources(key, { authFile: opts.authfile });
        throw new NookError(others.length ? `not logged into ${key} with nook; credentials for it in ${others.join(', ')} were left alone` : `not logged into ${key}`);
      }
      process.stdout.write(`Removed login credentials for ${key}\n`);
    });
}
