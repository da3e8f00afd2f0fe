/**
 * Reading a V8 CPU profile (`node --cpu-prof`) into where nook's time goes:
 * every sample is charged to the first frame, walking from the leaf towards
 * the root, that says whose work it is: nook's own modules by area
 * (dist/src/image -> "nook: image"), Node's module loader ("module loading"),
 * a dependency (node_modules/tar -> "dependency: tar"), or V8's own
 * categories (idle, garbage collection, program). Node's library code called
 * by nook (fs, child_process) is charged to the nook area that called it.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; scriptId?: string | number; lineNumber?: number; columnNumber?: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** microseconds */
  startTime: number;
  endTime: number;
  samples: number[];
  /** microseconds between samples */
  timeDeltas: number[];
}

export interface ProfileBreakdown {
  /** seconds the profile covers (from Node's bootstrap end to exit) */
  duration: number;
  /** category -> seconds */
  categories: Record<string, number>;
  /** seconds from the profile's start to the first sample in the executor module (undefined if none) */
  untilExecutor?: number;
  /** "function file:line" -> seconds of self time, the 15 largest */
  topFunctions: Record<string, number>;
}

/** The category of one frame, or undefined when the frame says nothing (Node internals, anonymous). */
export function frameCategory(frame: { functionName: string; url: string }): string | undefined {
  const { functionName, url } = frame;
  if (functionName === '(idle)') return 'idle (waiting: child processes, I/O)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return 'V8 and native code (program)';
  if (url.startsWith('node:internal/modules/') || url === 'node:internal/vm' || functionName === 'compileFunction' || functionName === 'wrapSafe') return 'module loading';
  const src = /\/dist\/src\/([^/]+)\//.exec(url);
  if (src) return `nook: ${src[1]}`;
  if (/\/dist\/src\/[^/]+\.js$/.test(url)) return 'nook: (top level)';
  const dependency = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dependency) return `dependency: ${dependency[1]}`;
  return undefined;
}

export function analyzeProfile(profile: CpuProfile, executorPattern = /\/dist\/src\/runtime\/executor\.js$/): ProfileBreakdown {
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const categoryCache = new Map<number, { category: string; executor: boolean }>();
  const classify = (id: number): { category: string; executor: boolean } => {
    const cached = categoryCache.get(id);
    if (cached) return cached;
    let category: string | undefined;
    let executor = false;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (executorPattern.test(frame.url)) executor = true;
      category ??= frameCategory(frame);
    }
    const result = { category: category ?? 'node internals', executor };
    categoryCache.set(id, result);
    return result;
  };
  const categories: Record<string, number> = {};
  const functions = new Map<string, number>();
  let time = profile.startTime;
  let untilExecutor: number | undefined;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    time += delta;
    // a sample's time is the interval that ends with it
    const { category, executor } = classify(profile.samples[i]!);
    categories[category] = (categories[category] ?? 0) + delta / 1e6;
    const frame = byId.get(profile.samples[i]!)?.callFrame;
    if (frame) {
      const file = frame.url.replace(/^.*\/(dist\/|node_modules\/)/, '$1');
      const key = `${frame.functionName || '(anonymous)'}${file ? ` ${file}:${(frame.lineNumber ?? 0) + 1}` : ''}`;
      functions.set(key, (functions.get(key) ?? 0) + delta / 1e6);
    }
    if (executor && untilExecutor === undefined) untilExecutor = (time - profile.startTime) / 1e6;
  }
  const topFunctions = Object.fromEntries([...functions].sort((a, b) => b[1] - a[1]).slice(0, 15));
  return { duration: (profile.endTime - profile.startTime) / 1e6, categories, topFunctions, ...(untilExecutor !== undefined ? { untilExecutor } : {}) };
}
