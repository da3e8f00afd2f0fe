/**
 * nook-runtime: nook as an OCI runtime, with runc's command line, for
 * podman --runtime, conmon, containerd and CRI-O runtime classes, and Slurm's
 * oci.conf. A thin layer over src/runtime/oci/ (docs/oci-runtime.md).
 *
 * As runc: errors are one line on stderr (and a record in the --log file, in
 * --log-format text or json, where conmon and podman look for them), the exit
 * status is 1 for the runtime's own errors, and `run` and `exec` exit with
 * the container process's status.
 */
import { appendFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';

const VERSION = '0.1.0';

interface GlobalFlags {
  root?: string;
  log?: string;
  logFormat: string;
  systemdCgroup?: boolean;
  debug?: boolean;
}

/** The --log file (runc's logrus output), or stderr without one. */
class RuntimeLog {
  constructor(
    private readonly path: string | undefined,
    private readonly format: string,
  ) {}

  private record(level: string, message: string): void {
    if (!this.path) return;
    const time = new Date().toISOString();
    const line = this.format === 'json' ? JSON.stringify({ level, msg: message, time }) : `time="${time}" level=${level} msg=${JSON.stringify(message)}`;
    try {
      appendFileSync(this.path, `${line}\n`);
    } catch {
      // a log that cannot be written must not hide the error itself
    }
  }

  error(message: string): void {
    this.record('error', message);
    process.stderr.write(`${message}\n`);
  }

  warn(message: string): void {
    if (this.path) this.record('warning', message);
    else process.stderr.write(`warning: ${message}\n`);
  }

  debug(message: string): void {
    if (this.path) this.record('debug', message);
    else process.stderr.write(`debug: ${message}\n`);
  }
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const collectNumbers = (value: string, previous: number[] = []) => {
  if (!/^\d+$/.test(value)) throw new CommanderError(1, 'nook-runtime.invalidArgument', `invalid group id "${value}"`);
  return [...previous, Number(value)];
};

function preserveFdsSupported(value: string | undefined): void {
  if (value !== undefined && value !== '0') throw Object.assign(new Error('--preserve-fds is not supported by nook-runtime'), { exitCode: 1 });
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('nook-runtime')
    .description('nook as an OCI runtime (runc\'s command line): create, start, state, kill, delete, run, exec, ps, list, spec, features')
    .version(`nook-runtime version ${VERSION}\nspec: 1.2.0`, '-v, --version')
    .option('--root <dir>', 'where container state is kept (default: $XDG_RUNTIME_DIR/nook-runtime, /run/nook-runtime for root)')
    .option('--log <file>', 'write errors and warnings to this file (default: stderr)')
    .addOption(new Option('--log-format <format>', 'the log file\'s format').choices(['text', 'json']).default('text'))
    .option('--systemd-cgroup', 'use systemd to manage the container\'s cgroup')
    .option('--debug', 'log each step of building the container')
    .addOption(new Option('--rootless <value>', 'accepted for runc compatibility (nook is always rootless-capable)').hideHelp())
    .addOption(new Option('--criu <path>', 'accepted for runc compatibility (no checkpoints)').hideHelp())
    .enablePositionalOptions()
    .exitOverride();

  const globals = () => program.opts<GlobalFlags>();
  let log = new RuntimeLog(undefined, 'text');
  const runtime = async () => {
    const g = globals();
    log = new RuntimeLog(g.log, g.logFormat);
    const [{ OciRuntime }, { defaultRuntimeRoot }] = await Promise.all([import('../runtime/oci/runtime.js'), import('../runtime/oci/state.js')]);
    return new OciRuntime({
      root: g.root ?? defaultRuntimeRoot(),
      systemdCgroup: g.systemdCgroup ?? false,
      warn: (m) => log.warn(m),
      ...(g.debug ? { trace: (m: string) => log.debug(m) } : {}),
    });
  };

  program
    .command('create')
    .description('create a container from a bundle; its process waits before the user\'s program until `start`')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the bundle directory (config.json and the root file system)', '.')
    .option('--pid-file <file>', 'write the container process\'s pid here')
    .option('--console-socket <path>', 'send the terminal\'s controlling side (process.terminal) to this unix socket')
    .option('--no-pivot', 'accepted; nook always uses pivot_root')
    .option('--no-new-keyring', 'accepted; the container keeps the session keyring')
    .option('--preserve-fds <n>', 'not supported (0 only)')
    .option('--pidfd-socket <path>', 'accepted; no pidfd is sent')
    .action(async (id: string, flags: { bundle: string; pidFile?: string; consoleSocket?: string; preserveFds?: string }) => {
      preserveFdsSupported(flags.preserveFds);
      await (await runtime()).create(id, { bundle: flags.bundle, ...(flags.pidFile ? { pidFile: flags.pidFile } : {}), ...(flags.consoleSocket ? { consoleSocket: flags.consoleSocket } : {}) });
    });

  program
    .command('start')
    .description('start a created container: its process runs the user\'s program')
    .argument('<container-id>')
    .action(async (id: string) => {
      await (await runtime()).start(id);
    });

  program
    .command('state')
    .description('print the state of a container (JSON, as the runtime spec defines it)')
    .argument('<container-id>')
    .action(async (id: string) => {
      process.stdout.write(`${JSON.stringify((await runtime()).state(id), null, 2)}\n`);
    });

  program
    .command('kill')
    .description('send a signal (default SIGTERM) to the container\'s process')
    .argument('<container-id>')
    .argument('[signal]', 'a name (TERM, SIGKILL) or a number', 'SIGTERM')
    .option('-a, --all', 'send it to every process of the container', false)
    .action(async (id: string, signal: string, flags: { all: boolean }) => {
      (await runtime()).kill(id, signal, flags.all);
    });

  program
    .command('delete')
    .description('delete a stopped (or created) container: its state, cgroup, poststop hooks')
    .argument('<container-id>')
    .option('-f, --force', 'kill it first if it still runs (SIGKILL)', false)
    .action(async (id: string, flags: { force: boolean }) => {
      await (await runtime()).delete(id, flags.force);
    });

  program
    .command('run')
    .description('create and start a container, and wait for it (its exit status is ours)')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the bundle directory', '.')
    .option('--console-socket <path>', 'send the terminal\'s controlling side to this unix socket')
    .option('-d, --detach', 'create and start, and do not wait', false)
    .option('--pid-file <file>', 'write the container process\'s pid here')
    .option('--keep', 'keep the container\'s state after it exits', false)
    .option('--no-subreaper', 'accepted; the monitor reaps the container')
    .option('--no-pivot', 'accepted; nook always uses pivot_root')
    .option('--no-new-keyring', 'accepted')
    .option('--preserve-fds <n>', 'not supported (0 only)')
    .action(async (id: string, flags: { bundle: string; consoleSocket?: string; detach: boolean; pidFile?: string; keep: boolean; preserveFds?: string }) => {
      preserveFdsSupported(flags.preserveFds);
      process.exitCode = await (await runtime()).run(id, {
        bundle: flags.bundle,
        detach: flags.detach,
        keep: flags.keep,
        ...(flags.pidFile ? { pidFile: flags.pidFile } : {}),
        ...(flags.consoleSocket ? { consoleSocket: flags.consoleSocket } : {}),
      });
    });

  program
    .command('exec')
    .description('run a new process in a container (its exit status is ours unless --detach)')
    .argument('<container-id>')
    .argument('[command...]', 'the command and its arguments (unless --process)')
    .option('-p, --process <file>', 'a JSON file with the process (config.json\'s process object)')
    .option('-t, --tty', 'a terminal for the process', false)
    .option('--console-socket <path>', 'send the terminal\'s controlling side to this unix socket')
    .option('-d, --detach', 'do not wait for the process', false)
    .option('--pid-file <file>', 'write the process\'s pid here')
    .option('--cwd <dir>', 'working directory in the container')
    .option('-e, --env <NAME=VALUE>', 'add an environment variable', collect, [])
    .option('-u, --user <uid[:gid]>', 'user (and group) ids')
    .option('-g, --additional-gids <gid>', 'an additional group id', collectNumbers, [])
    .option('--no-new-privs', 'set no_new_privs')
    .option('-c, --cap <capability>', 'add a capability', collect, [])
    .option('--process-label <label>', 'accepted (no SELinux)')
    .option('--apparmor <profile>', 'accepted (no AppArmor)')
    .option('--preserve-fds <n>', 'not supported (0 only)')
    .option('--pidfd-socket <path>', 'accepted; no pidfd is sent')
    .option('--cgroup <path>', 'accepted; the process joins the container\'s cgroup')
    .option('--ignore-paused', 'accepted')
    .passThroughOptions()
    .action(async (id: string, command: string[], flags: {
      process?: string; tty: boolean; consoleSocket?: string; detach: boolean; pidFile?: string; cwd?: string; env: string[];
      user?: string; additionalGids: number[]; newPrivs?: boolean; cap: string[]; preserveFds?: string;
    }) => {
      preserveFdsSupported(flags.preserveFds);
      if (!flags.process && command.length === 0) throw Object.assign(new Error('exec needs a command or --process'), { exitCode: 1 });
      process.exitCode = await (await runtime()).exec(id, {
        args: command,
        tty: flags.tty,
        detach: flags.detach,
        env: flags.env,
        additionalGids: flags.additionalGids,
        noNewPrivs: flags.newPrivs === false,
        caps: flags.cap,
        ...(flags.process ? { processFile: flags.process } : {}),
        ...(flags.consoleSocket ? { consoleSocket: flags.consoleSocket } : {}),
        ...(flags.pidFile ? { pidFile: flags.pidFile } : {}),
        ...(flags.cwd ? { cwd: flags.cwd } : {}),
        ...(flags.user ? { user: flags.user } : {}),
      });
    });

  program
    .command('ps')
    .description('the processes of a container (ps -ef rows, or their pids as JSON)')
    .argument('<container-id>')
    .argument('[ps-options...]', 'options for ps (default: -ef)')
    .addOption(new Option('-f, --format <format>', 'table or json').choices(['table', 'json']).default('table'))
    .passThroughOptions()
    .action(async (id: string, psOptions: string[], flags: { format: string }) => {
      const rt = await runtime();
      const [{ containerProcesses }] = await Promise.all([import('../runtime/oci/runtime.js')]);
      const record = rt.store.load(id);
      const pids = rt.store.status(record) === 'stopped' ? [] : containerProcesses(record);
      if (flags.format === 'json') {
        process.stdout.write(`${JSON.stringify(pids)}\n`);
        return;
      }
      const { execa } = await import('execa');
      const ps = await execa('ps', psOptions.length ? psOptions : ['-ef'], { reject: false });
      if (ps.exitCode !== 0) throw Object.assign(new Error(`ps: ${ps.stderr.trim() || `exited with status ${ps.exitCode}`}`), { exitCode: 1 });
      const [header = '', ...rows] = ps.stdout.split('\n');
      const column = header.trim().split(/\s+/).indexOf('PID');
      if (column < 0) throw Object.assign(new Error('ps: no PID column in its output'), { exitCode: 1 });
      const wanted = new Set(pids);
      process.stdout.write(`${[header, ...rows.filter((row) => wanted.has(Number(row.trim().split(/\s+/)[column])))].join('\n')}\n`);
    });

  program
    .command('list')
    .description('the containers in the runtime root')
    .addOption(new Option('-f, --format <format>', 'table or json').choices(['table', 'json']).default('table'))
    .option('-q, --quiet', 'ids only', false)
    .action(async (flags: { format: string; quiet: boolean }) => {
      const states = (await runtime()).list();
      if (flags.quiet) {
        process.stdout.write(states.map((s) => `${s.id}\n`).join(''));
      } else if (flags.format === 'json') {
        process.stdout.write(`${JSON.stringify(states)}\n`);
      } else {
        const { printTable } = await import('./output.js');
        printTable(['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, s.owner]));
      }
    });

  program
    .command('spec')
    .description('write a starting config.json (as runc spec)')
    .option('-b, --bundle <dir>', 'where to write config.json', '.')
    .option('--rootless', 'for an unprivileged user: a user namespace mapping only your ids, no network namespace', false)
    .action(async (flags: { bundle: string; rootless: boolean }) => {
      const [{ exampleSpec, toRootless }, { existsSync, writeFileSync }, { join }] = await Promise.all([import('../runtime/oci/default-spec.js'), import('node:fs'), import('node:path')]);
      const path = join(flags.bundle, 'config.json');
      if (existsSync(path)) throw Object.assign(new Error('File config.json exists. Remove it first'), { exitCode: 1 });
      const spec = flags.rootless ? toRootless(exampleSpec()) : exampleSpec();
      writeFileSync(path, `${JSON.stringify(spec, null, '\t')}\n`, { mode: 0o666 & ~process.umask() });
    });

  program
    .command('features')
    .description('what this runtime supports (JSON, as the runtime spec\'s features document)')
    .action(async () => {
      const { runtimeFeatures } = await import('../runtime/oci/features.js');
      process.stdout.write(`${JSON.stringify(runtimeFeatures(VERSION), null, 4)}\n`);
    });

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander printed its message; help and version are not errors
      process.exitCode = error.exitCode === 0 ? 0 : 1;
      return;
    }
    const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
    new RuntimeLog(globals().log, globals().logFormat).error(message);
    if (globals().debug && error instanceof Error && error.cause) process.stderr.write(`caused by: ${String((error.cause as Error).stack ?? error.cause)}\n`);
    process.exitCode = 1;
  }
}

void main(process.argv);
