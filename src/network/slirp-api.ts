/**
 * slirp4netns's control socket (--api-socket): one JSON request per
 * connection, one JSON reply, then slirp4netns closes the connection.
 *   {"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_port":80}}
 *   -> {"return":{"id":1}}   or   {"error":{"desc":"..."}}
 */
import { connect } from 'node:net';
import { NookError } from '../lib/errors.js';
import type { PortMapping } from './publish.js';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH = 107;

export interface HostForward {
  id: number;
  proto: string;
  host_addr: string;
  host_port: number;
  guest_addr: string;
  guest_port: number;
}

type ApiReply = { return?: unknown; error?: { desc?: string } };

export async function slirpRequest(socketPath: string, request: unknown, timeoutMs = 5000): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(socketPath);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from slirp4netns within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.end(JSON.stringify(request)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  }).catch((error: unknown) => {
    throw new NookError(`cannot talk to slirp4netns at ${socketPath}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  });
  let reply: ApiReply;
  try {
    reply = JSON.parse(text) as ApiReply;
  } catch (error) {
    throw new NookError(`slirp4netns answered something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`, { cause: error });
  }
  if (reply.error) throw new NookError(`slirp4netns refused the request: ${reply.error.desc ?? JSON.stringify(reply.error)}`);
  return reply.return;
}

/** Forwards host_addr:host_port to the container's port; returns slirp4netns's id for the rule. */
export async function addHostForward(socketPath: string, port: PortMapping): Promise<number> {
  try {
    const result = (await slirpRequest(socketPath, {
      execute: 'add_hostfwd',
      arguments: { proto: port.protocol, host_addr: port.hostIp, host_port: port.hostPort, guest_port: port.containerPort },
    })) as { id?: number } | undefined;
    return result?.id ?? -1;
  } catch (error) {
    // libslirp says only "slirp_add_hostfwd failed": nearly always a port taken since checkPortsAvailable ran.
    throw new NookError(`cannot publish ${port.hostIp}:${port.hostPort}/${port.protocol}: slirp4netns could not bind it (is it in use?)`, { cause: error });
  }
}

export async function listHostForwards(socketPath: string): Promise<HostForward[]> {
  const result = (await slirpRequest(socketPath, { execute: 'list_hostfwd' })) as { entries?: HostForward[] } | undefined;
  return result?.entries ?? [];
}

export async function removeHostForward(socketPath: string, id: number): Promise<void> {
  await slirpRequest(socketPath, { execute: 'remove_hostfwd', arguments: { id } });
}
