/**
 * pasta (from the passt project): placeholder until implemented.
 */
import { NookError } from '../lib/errors.js';
import type { NetworkMode } from './mode.js';
import type { AttachOptions, NetworkHandle } from './attach.js';

export async function startPasta(_mode: Extract<NetworkMode, { kind: 'pasta' }>, _options: AttachOptions): Promise<NetworkHandle> {
  throw new NookError('--network pasta is not supported yet');
}
