/**
 * nook's command line: a thin layer over the library. Start-up cost matters
 * (`run` and `exec` are latency-critical), so only the module of the command
 * being run is imported, and each command imports the library it needs inside
 * its action.
 */
import { Command, CommanderError } from 'commander';
import { commandWord } from './command-word.cjs';
import { reportError } from './output.js';

/** command name -> module under ./commands exporting `register(program)` */
const commandModules: Record<string, string> = {
  run: 'run',
  create: 'lifecycle',
  start: 'lifecycle',
  stop: 'lifecycle',
  kill: 'lifecycle',
  rm: 'lifecycle',
  ps: 'lifecycle',
  logs: 'lifecycle',
  wait: 'lifecycle',
  inspect: 'lifecycle',
  exec: 'exec',
  container: 'lifecycle',
  doctor: 'doctor',
  info: 'info',
  images: 'images',
  image: 'images',
  pull: 'registry',
  rmi: 'images',
  tag: 'images',
  load: 'images',
  save: 'images',
  import: 'images',
  login: 'registry',
  logout: 'registry',
  system: 'images',
  unshare: 'unshare',
  port: 'port',
  stats: 'cgroups',
  update: 'cgroups',
};

type Register = (program: Command) => void;


function globalFlag(argv: string[], name: string): boolean {
  return argv.includes(name);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('nook')
    .description('Rootless containers: namespaces, cgroups and overlay filesystems, without root.')
    .version('0.1.0', '-v, --version')
    .option('--root <dir>', 'storage root for images and containers (default: $XDG_DATA_HOME/nook)')
    .option('--runroot <dir>', 'runtime state directory (default: $XDG_RUNTIME_DIR/nook)')
    .option('--debug', 'show the causes of errors')
    .option('--trace', 'print every kernel-level step as it happens')
    .option('--cgroup-manager <manager>', 'systemd, cgroupfs or none for new containers (default: what nook info shows)')
    .enablePositionalOptions()
    .showHelpAfterError('(run nook --help for the list of commands)')
    .exitOverride();

  // The first non-option word is the command to load.
  const wanted = commandWord(argv.slice(2));
  const modules = wanted && commandModules[wanted] ? [commandModules[wanted]] : [...new Set(Object.values(commandModules))];
  for (const name of modules) {
    const mod = (await import(`./commands/${name}.js`).catch((error: unknown) => {
      if (wanted) throw error;
      return null; // a command module not written yet must not break --help
    })) as { register: Register } | null;
    mod?.register(program);
  }

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander already printed its message; help and version are not errors.
      process.exitCode = error.exitCode === 0 ? 0 : 125;
      return;
    }
    throw error;
  }
}

main(process.argv).catch((error: unknown) => {
  process.exitCode = reportError(error, globalFlag(process.argv, '--debug'));
});
