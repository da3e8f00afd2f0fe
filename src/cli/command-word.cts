/**
 * Which command a nook command line runs, found before commander parses it:
 * the launcher picks its code cache by it, and the program loads only that
 * command's module. CommonJS so that the launcher (itself CommonJS) and the
 * ES-module program share it.
 */

/** The root program's options that take a separate value (`--root DIR run ...`). */
export const globalOptionsWithValue: readonly string[] = ['--root', '--runroot', '--cgroup-manager'];

/** The first word that is neither an option nor an option's value. */
export function commandWord(args: readonly string[], optionsWithValue: readonly string[] = globalOptionsWithValue): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (optionsWithValue.includes(word)) i++;
    else if (!word.startsWith('-')) return word;
  }
  return undefined;
}
