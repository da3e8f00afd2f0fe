/**
 * Where things are in the checkout, seen from the compiled suite
 * (dist/bench/*.js).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const distBench = dirname(fileURLToPath(import.meta.url));

export const checkout = resolve(distBench, '../..');

export const paths = {
  checkout,
  /** the compiled suite's entry point */
  benchMain: join(distBench, 'run.js'),
  /** nook's CLI as `npm run build` leaves it */
  nookMain: join(checkout, 'dist/src/cli/main.cjs'),
  /** built images kept between runs (git-ignored by bench/.gitignore) */
  cache: join(checkout, 'bench/cache'),
  /** bench/results/latest.json (git-ignored) */
  results: join(checkout, 'bench/results'),
  testUsersScript: join(checkout, 'test/harness/test-users.sh'),
  registryScript: join(checkout, 'test/fixtures/registry.sh'),
} as const;
