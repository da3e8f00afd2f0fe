/** TCP clients for the tests of published and forwarded ports. */
import { connect } from 'node:net';

/** Sends `data`, shuts down writing (half-close) and collects the reply until the other side closes; `data` streams while the reply is read. */
export function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(data));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}
