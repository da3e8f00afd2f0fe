/**
 * Which file a worker thread of the extraction helper starts from: its
 * esbuild bundle in dist/src/cli/ (scripts/bundle-cli.mjs), one file to
 * compile instead of an ES module graph to resolve on every layer's critical
 * path; the module itself in a checkout without a bundle, or with one older
 * than tsc's output, or with NOOK_NO_BUNDLE (the rule of the CLI's launcher).
 */
import { statSync } from 'node:fs';

export function workerFile(module: URL, bundle: URL): URL {
  if (process.env.NOOK_NO_BUNDLE) return module;
  try {
    if (statSync(bundle).mtimeMs >= statSync(module).mtimeMs) return bundle;
  } catch {
    // no bundle
  }
  return module;
}
