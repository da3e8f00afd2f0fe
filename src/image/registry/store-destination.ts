/**
 * The image store as a pull destination (see ./destination.ts).
 * Placeholder until src/image/store.ts lands.
 */
import { NookError } from '../../lib/errors.js';
import type { PullDestination } from './destination.js';

export async function openPullDestination(_paths: { root?: string | undefined; runroot?: string | undefined }): Promise<PullDestination & { close(): Promise<void> }> {
  throw new NookError('pull needs the image store, which is not built yet');
}
