/**
 * Image commands, with podman's flags and meanings: images (image ls), image
 * inspect, rmi (image rm), tag, untag, load, save, import, image prune, and
 * system df. (pull, login and logout are in ./registry.ts.) The library is
 * imported inside each action: start-up latency matters.
 */
import { Command, Option } from 'commander';
import type { GlobalOptions } from '../output.js';

type Store = import('../../image/store.js').ImageStore;
type StoreOptions = import('../../image/store.js').ImageStoreOptions;

function globalsOf(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

async function pathsOf(cmd: Command) {
  const { resolvePaths } = await import('../../lib/paths.js');
  const g = globalsOf(cmd);
  return resolvePaths({ root: g.root, runroot: g.runroot });
}

/**
 * The store, told about containers: images they use are kept by rmi (exit 2)
 * and prune, and `rmi --force` removes those containers first, as podman does.
 */
async function openStore(cmd: Command, extra: StoreOptions = {}): Promise<Store> {
  const paths = await pathsOf(cmd);
  const { ImageStore } = await import('../../image/store.js');
  const containers = async () => {
    const { ContainerStore } = await import('../../container/store.js');
    return new ContainerStore(paths);
  };
  return new ImageStore(paths, {
    containerImageIds: async () => (await containers()).list().map((c) => c.imageId),
    removeContainersOfImage: async (imageId) => {
      const store = await containers();
      const { removeContainer } = await import('../../container/lifecycle.js');
      for (const record of store.list().filter((c) => c.imageId === imageId)) await removeContainer(store, record, { force: true });
    },
    ...extra,
  });
}

async function progressFor(quiet: boolean | undefined) {
  const { createProgress } = await import('../../lib/progress.js');
  return createProgress({ quiet: Boolean(quiet) });
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Prints all errors but the last, which is thrown (its exit code wins, as in podman). */
function reportErrors(errors: Error[]): void {
  if (errors.length === 0) return;
  for (const error of errors.slice(0, -1)) process.stderr.write(`Error: ${error.message}\n`);
  throw errors[errors.length - 1];
}

// ---- Go-template-like --format ----

function valueAt(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.').filter(Boolean)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function goString(value: unknown): string {
  if (value === undefined || value === null) return '<no value>';
  if (Array.isArray(value)) return `[${value.map(goString).join(' ')}]`;
  if (typeof value === 'object') return `map[${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}:${goString(v)}`).join(' ')}]`;
  return String(value);
}

/** `{{.Field}}`, `{{.A.B}}`, `{{json .X}}`, `\t` and `\n`: the subset of Go templates people use with podman. */
function renderTemplate(template: string, value: unknown): string {
  return template
    .replace(/\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}/g, (_m, json: string | undefined, path: string) => {
      const v = path ? valueAt(value, path) : value;
      return json ? JSON.stringify(v) : goString(v);
    })
    .replace(/\\t/g, '\t')
    .replace(/\\n/g, '\n');
}

// ---- images ----

interface ImagesFlags {
  all?: boolean;
  quiet?: boolean;
  format?: string;
  trunc?: boolean;
  digests?: boolean;
  filter?: string[];
  heading?: boolean;
  sort?: string;
}

function configureImages(cmd: Command): Command {
  return cmd
    .description('list images in local storage')
    .option('-a, --all', 'show all images (nook keeps no intermediate images: same as without)')
    .option('-q, --quiet', 'show only image ids')
    .option('--format <format>', 'json, table, or a Go template such as "{{.Repository}}:{{.Tag}}"')
    .option('--no-trunc', 'do not truncate image ids')
    .option('--digests', 'show digests')
    .option('-f, --filter <filter>', 'dangling=true|false, reference=PATTERN, label=KEY[=VALUE], id=ID, before=IMAGE, since=IMAGE (repeatable)', collect)
    .option('-n, --noheading', 'do not print column headings')
    .addOption(new Option('--sort <field>', 'sort by').choices(['created', 'id', 'repository', 'size', 'tag']).default('created'))
    .argument('[reference]', 'show only images matching this name (a glob)')
    .action(async (reference: string | undefined, flags: ImagesFlags, command: Command) => {
      const store = await openStore(command);
      const { rowsOf, summarize, humanAge, humanSize } = await import('../../image/views.js');
      const { NookError } = await import('../../lib/errors.js');
      let views = await store.listImages();
      const filters = [...(flags.filter ?? []), ...(reference ? [`reference=${reference}`] : [])];
      const glob = (pattern: string) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '.')}$`);
      const createdOf = (v: (typeof views)[number]) => v.record.created ?? v.record.stored;
      for (const filter of filters) {
        const eq = filter.indexOf('=');
        const key = eq >= 0 ? filter.slice(0, eq) : filter;
        const value = eq >= 0 ? filter.slice(eq + 1) : '';
        if (key === 'dangling') {
          if (value !== 'true' && value !== 'false') throw new NookError(`invalid filter ${filter}: dangling takes true or false`);
          views = views.filter((v) => (v.names.length === 0) === (value === 'true'));
        } else if (key === 'reference') {
          const re = glob(value.includes(':') ? value : `${value}`);
          views = views.filter((v) =>
            v.names.some((n) => {
              const repo = n.slice(0, n.lastIndexOf(':'));
              return re.test(n) || re.test(repo) || re.test(repo.slice(repo.indexOf('/') + 1)) || re.test(repo.split('/').pop()!) || re.test(n.slice(n.indexOf('/') + 1)) || re.test(n.split('/').pop()!);
            }),
          );
        } else if (key === 'label') {
          const [k, want] = value.split('=', 2) as [string, string | undefined];
          views = views.filter((v) => {
            const labels = store.readConfig(v.record).config?.Labels ?? {};
            return k in labels && (want === undefined || labels[k] === want);
          });
        } else if (key === 'id') {
          views = views.filter((v) => v.record.id.startsWith(value.replace(/^sha256:/, '')));
        } else if (key === 'before' || key === 'since') {
          const pivot = await store.resolveImage(value);
          const t = createdOf(pivot);
          views = views.filter((v) => (key === 'before' ? createdOf(v) < t : createdOf(v) > t));
        } else {
          throw new NookError(`invalid filter ${JSON.stringify(filter)}: nook knows dangling, reference, label, id, before, since`);
        }
      }
      const inUse = new Map<string, number>();
      const used = store.options.containerImageIds ? await Promise.resolve(store.options.containerImageIds()).catch((): string[] => []) : [];
      for (const id of used) inUse.set(id, (inUse.get(id) ?? 0) + 1);

      if (flags.format === 'json') {
        const { printJson } = await import('../output.js');
        printJson(views.map((v) => summarize(store, v, inUse.get(v.record.id) ?? 0)));
        return;
      }
      const idOf = (id: string) => (flags.trunc === false ? `sha256:${id}` : id.slice(0, 12));
      if (flags.quiet) {
        const seen = new Set<string>();
        for (const v of views) if (!seen.has(v.record.id)) seen.add(v.record.id) && process.stdout.write(`${idOf(v.record.id)}\n`);
        return;
      }
      let rows = views.flatMap((v) => rowsOf(store, v));
      const sorters: Record<string, (a: (typeof rows)[number], b: (typeof rows)[number]) => number> = {
        created: (a, b) => b.created.localeCompare(a.created),
        id: (a, b) => a.id.localeCompare(b.id),
        repository: (a, b) => a.repository.localeCompare(b.repository),
        tag: (a, b) => a.tag.localeCompare(b.tag),
        size: (a, b) => a.size - b.size,
      };
      rows = rows.sort(sorters[flags.sort ?? 'created']);
      const fields = (r: (typeof rows)[number]) => ({
        ID: idOf(r.id),
        Id: r.id,
        Repository: r.repository,
        Tag: r.tag,
        Digest: r.digest,
        CreatedSince: humanAge(r.created),
        CreatedAt: r.created,
        Created: humanAge(r.created),
        Size: humanSize(r.size),
        Names: r.names,
      });
      if (flags.format && flags.format !== 'table') {
        const template = flags.format.replace(/^table\s+/, '');
        if (flags.format.startsWith('table ') && flags.heading !== false) {
          process.stdout.write(`${renderTemplate(template.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, f: string) => f.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()), {})}\n`);
        }
        for (const r of rows) process.stdout.write(`${renderTemplate(template, fields(r))}\n`);
        return;
      }
      const headers = ['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
      const table = rows.map((r) => {
        const f = fields(r);
        return [f.Repository, f.Tag, ...(flags.digests ? [f.Digest || '<none>'] : []), f.ID, f.CreatedSince, f.Size];
      });
      const { printTable } = await import('../output.js');
      if (flags.heading === false) {
        for (const line of table) process.stdout.write(`${line.join('  ')}\n`);
      } else printTable(headers, table);
    });
}

// ---- inspect ----

function configureInspect(cmd: Command): Command {
  return cmd
    .description('show the configuration and layers of images')
    .option('-f, --format <format>', 'json (default) or a Go template such as "{{.Id}}" or "{{.Config.Cmd}}"', 'json')
    .argument('<image...>', 'image names or ids')
    .action(async (images: string[], flags: { format: string }, command: Command) => {
      const store = await openStore(command);
      const { inspect } = await import('../../image/views.js');
      const results: unknown[] = [];
      const errors: Error[] = [];
      for (const name of images) {
        try {
          results.push(inspect(store, await store.resolveImage(name)));
        } catch (error) {
          errors.push(error as Error);
        }
      }
      if (flags.format === 'json') {
        const { printJson } = await import('../output.js');
        printJson(results);
      } else {
        for (const r of results) process.stdout.write(`${renderTemplate(flags.format, r)}\n`);
      }
      reportErrors(errors);
    });
}

// ---- rmi ----

function configureRmi(cmd: Command): Command {
  return cmd
    .description('remove images (a name shared with other names is only untagged)')
    .option('-f, --force', 'remove images in use by containers (and those containers), and images with several names')
    .option('-a, --all', 'remove all images')
    .option('-i, --ignore', 'no error for images that do not exist')
    .argument('[image...]', 'image names or ids')
    .action(async (images: string[], flags: { force?: boolean; all?: boolean; ignore?: boolean }, command: Command) => {
      const { NookError } = await import('../../lib/errors.js');
      if (!flags.all && images.length === 0) throw new NookError('name at least one image, or use --all');
      if (flags.all && images.length > 0) throw new NookError('--all and image names cannot be combined');
      const store = await openStore(command);
      const report = await store.removeImages(images, { force: Boolean(flags.force), all: Boolean(flags.all), ignoreMissing: Boolean(flags.ignore) });
      for (const name of report.untagged) process.stdout.write(`Untagged: ${name}\n`);
      for (const id of report.deleted) process.stdout.write(`Deleted: ${id}\n`);
      reportErrors(report.errors);
    });
}

// ---- tag / untag ----

function configureTag(cmd: Command): Command {
  return cmd
    .description('give an image more names (short names go under localhost/)')
    .argument('<image>', 'the image')
    .argument('<target...>', 'new names, e.g. myimage:1.0 or registry.example.com/team/app:1.0')
    .action(async (image: string, targets: string[], _flags: unknown, command: Command) => {
      const store = await openStore(command);
      const { localReference, taggedName } = await import('../../image/reference.js');
      const view = await store.resolveImage(image);
      const names = targets.map((t) => taggedName(localReference(t)));
      for (const name of names) await store.setName(view.record.id, name);
    });
}

function configureUntag(cmd: Command): Command {
  return cmd
    .description('remove names from an image (all of them when none is given); the image stays')
    .argument('<image>', 'the image')
    .argument('[name...]', 'names to remove')
    .action(async (image: string, names: string[], _flags: unknown, command: Command) => {
      const store = await openStore(command);
      const { NookError } = await import('../../lib/errors.js');
      const { localReference, parseReference, taggedName, withDefaultTag, isShortName } = await import('../../image/reference.js');
      const view = await store.resolveImage(image);
      const wanted = names.length === 0 ? view.names : names;
      for (const name of wanted) {
        // a short name may mean localhost/NAME or docker.io/library/NAME: whichever this image has
        const candidates = isShortName(name) ? [taggedName(localReference(name)), taggedName(withDefaultTag(parseReference(name)))] : [taggedName(withDefaultTag(parseReference(name)))];
        const match = candidates.find((c) => view.names.includes(c)) ?? view.names.find((n) => n.endsWith(`/${name}`) || n.endsWith(`/${name}:latest`));
        if (!match) throw new NookError(`${name}: image ${view.record.id.slice(0, 12)} has no such name`);
        await store.removeName(match);
      }
    });
}

// ---- load / save / import ----

function configureLoad(cmd: Command): Command {
  return cmd
    .description('load images from a docker-archive or oci-archive (as `docker save` / `nook save` write them), or an OCI layout directory')
    .option('-i, --input <file>', 'the archive (default: standard input)')
    .option('-q, --quiet', 'no progress output')
    .option('--ignore-chown-errors', 'give files owned by ids outside your user namespace to root instead of refusing the image')
    .action(async (flags: { input?: string; quiet?: boolean; ignoreChownErrors?: boolean }, command: Command) => {
      const { NookError } = await import('../../lib/errors.js');
      const input = flags.input ?? '-';
      if (input === '-' && process.stdin.isTTY) throw new NookError('no archive to load: use -i FILE, or pipe one in');
      const store = await openStore(command, { ignoreChownErrors: Boolean(flags.ignoreChownErrors) });
      const { loadImages } = await import('../../image/load.js');
      const loaded = await loadImages(store, input, { progress: await progressFor(flags.quiet) });
      for (const image of loaded) {
        if (image.names.length === 0) process.stdout.write(`Loaded image: sha256:${image.id}\n`);
        for (const name of image.names) process.stdout.write(`Loaded image: ${name}\n`);
      }
    });
}

function configureSave(cmd: Command): Command {
  return cmd
    .description('save images to an archive (docker-archive by default; it is also a valid OCI image layout)')
    .option('-o, --output <file>', 'where to write (default: standard output, when it is not a terminal)')
    .addOption(new Option('--format <format>', 'archive format').choices(['docker-archive', 'oci-archive', 'oci-dir']).default('docker-archive'))
    .option('-m, --multi-image-archive', 'several images in one docker-archive (always allowed in nook)')
    .option('-q, --quiet', 'no progress output')
    .argument('<image...>', 'images to save')
    .action(async (images: string[], flags: { output?: string; format: 'docker-archive' | 'oci-archive' | 'oci-dir'; quiet?: boolean }, command: Command) => {
      const { NookError } = await import('../../lib/errors.js');
      if (!flags.output && process.stdout.isTTY) throw new NookError('refusing to write an archive to a terminal: use -o FILE or redirect the output');
      const store = await openStore(command);
      const { saveImages } = await import('../../image/save.js');
      const toStdout = !flags.output || flags.output === '-';
      await saveImages(store, images, { format: flags.format, output: toStdout ? process.stdout : flags.output!, progress: await progressFor(flags.quiet || toStdout) });
    });
}

function configureImport(cmd: Command): Command {
  return cmd
    .description('create a one-layer image from a root filesystem tarball (a file, or - for standard input)')
    .argument('<tarball>', 'the tarball (plain, gzip, zstd, xz or bzip2)')
    .argument('[name]', 'the new image\'s name (short names go under localhost/)')
    .option('-c, --change <instruction>', 'Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR (repeatable)', collect)
    .option('-m, --message <message>', 'history comment')
    .option('--os <os>', 'the image\'s operating system (default: linux)')
    .option('--arch <arch>', 'the image\'s architecture (default: the host\'s)')
    .option('--variant <variant>', 'the image\'s architecture variant')
    .option('-q, --quiet', 'no progress output')
    .option('--ignore-chown-errors', 'give files owned by ids outside your user namespace to root instead of refusing the tarball')
    .action(async (tarball: string, name: string | undefined, flags: { change?: string[]; message?: string; os?: string; arch?: string; variant?: string; quiet?: boolean; ignoreChownErrors?: boolean }, command: Command) => {
      const store = await openStore(command, { ignoreChownErrors: Boolean(flags.ignoreChownErrors) });
      const { importTarball } = await import('../../image/import.js');
      const result = await importTarball(store, tarball, {
        ...(name ? { name } : {}),
        changes: flags.change ?? [],
        ...(flags.message ? { message: flags.message } : {}),
        ...(flags.os ? { os: flags.os } : {}),
        ...(flags.arch ? { arch: flags.arch } : {}),
        ...(flags.variant ? { variant: flags.variant } : {}),
        progress: await progressFor(flags.quiet),
      });
      process.stdout.write(`${result.id}\n`);
    });
}

// ---- prune / df ----

async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

function configurePrune(cmd: Command): Command {
  return cmd
    .description('remove dangling images (no name), and with --all every image no container uses')
    .option('-a, --all', 'remove all images not used by containers')
    .option('-f, --force', 'do not ask for confirmation')
    .action(async (flags: { all?: boolean; force?: boolean }, command: Command) => {
      const { NookError } = await import('../../lib/errors.js');
      if (!flags.force) {
        const what = flags.all ? 'all images not used by at least one container' : 'all dangling images';
        if (!process.stdin.isTTY) throw new NookError(`refusing to remove ${what} without confirmation: use --force`);
        if (!(await confirm(`WARNING! This command removes ${what}.\nAre you sure you want to continue? [y/N] `))) return;
      }
      const store = await openStore(command);
      const result = await store.pruneImages({ all: Boolean(flags.all) });
      for (const id of result.deleted) process.stdout.write(`${id}\n`);
    });
}

function configureDf(cmd: Command): Command {
  return cmd
    .description('show disk usage of images and containers')
    .option('--format <format>', 'json, or a Go template')
    .option('-v, --verbose', 'show each image')
    .action(async (flags: { format?: string; verbose?: boolean }, command: Command) => {
      const store = await openStore(command);
      const { humanSize } = await import('../../image/views.js');
      const usage = await store.diskUsage();
      const containers = await containerUsage(await pathsOf(command));
      const pct = (part: number, whole: number) => `${whole === 0 ? 0 : Math.round((part / whole) * 100)}%`;
      const rows = [
        { Type: 'Images', Total: usage.images.total, Active: usage.images.active, Size: usage.images.size, Reclaimable: usage.images.reclaimable },
        { Type: 'Containers', Total: containers.total, Active: containers.active, Size: containers.size, Reclaimable: containers.reclaimable },
        { Type: 'Local Volumes', Total: 0, Active: 0, Size: 0, Reclaimable: 0 },
      ];
      if (flags.format === 'json') {
        const { printJson } = await import('../output.js');
        printJson(rows.map((r) => ({ ...r, RawSize: r.Size, RawReclaimable: r.Reclaimable, Size: humanSize(r.Size), Reclaimable: `${humanSize(r.Reclaimable)} (${pct(r.Reclaimable, r.Size)})` })));
        return;
      }
      if (flags.format) {
        for (const r of rows) process.stdout.write(`${renderTemplate(flags.format, { ...r, Size: humanSize(r.Size), Reclaimable: humanSize(r.Reclaimable) })}\n`);
        return;
      }
      const { printTable } = await import('../output.js');
      printTable(
        ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
        rows.map((r) => [r.Type, String(r.Total), String(r.Active), humanSize(r.Size), `${humanSize(r.Reclaimable)} (${pct(r.Reclaimable, r.Size)})`]),
      );
      if (flags.verbose) {
        const { rowsOf, humanAge } = await import('../../image/views.js');
        process.stdout.write('\nImages space usage:\n\n');
        printTable(
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
          (await store.listImages()).flatMap((v) => rowsOf(store, v)).map((r) => [r.repository, r.tag, r.id.slice(0, 12), humanAge(r.created), humanSize(r.size)]),
        );
      }
    });
}

/** Containers' count and the size of their writable layers (best effort: unreadable parts count as 0). */
async function containerUsage(paths: import('../../lib/paths.js').NookPaths): Promise<{ total: number; active: number; size: number; reclaimable: number }> {
  const { ContainerStore } = await import('../../container/store.js');
  const { lstat, readdir } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const du = async (path: string): Promise<number> => {
    try {
      const st = await lstat(path);
      if (!st.isDirectory()) return st.size;
      let total = 0;
      for (const name of await readdir(path)) total += await du(join(path, name));
      return total;
    } catch {
      return 0;
    }
  };
  const store = new ContainerStore(paths);
  const records = store.list();
  let size = 0;
  let reclaimable = 0;
  for (const record of records) {
    const bytes = await du(store.dataDir(record.id));
    size += bytes;
    if (record.status !== 'running') reclaimable += bytes;
  }
  return { total: records.length, active: records.filter((r) => r.status === 'running').length, size, reclaimable };
}

export function register(program: Command): void {
  configureImages(program.command('images'));
  configureRmi(program.command('rmi'));
  configureTag(program.command('tag'));
  configureLoad(program.command('load'));
  configureSave(program.command('save'));
  configureImport(program.command('import'));

  const image = program.command('image').description('manage images');
  configureImages(image.command('ls').alias('list'));
  configureInspect(image.command('inspect'));
  configureRmi(image.command('rm'));
  configureTag(image.command('tag'));
  configureUntag(image.command('untag'));
  configureLoad(image.command('load'));
  configureSave(image.command('save'));
  configureImport(image.command('import'));
  configurePrune(image.command('prune'));

  const system = program.command('system').description('manage nook itself');
  configureDf(system.command('df'));
}
