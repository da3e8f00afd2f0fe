/**
 * A file another process (or another part of this one) is still writing: a
 * blob being downloaded into the store's partial/ directory while its layer
 * is extracted from it. The writer says how many bytes from the start are
 * written (`advance`), and when the file is complete (`finish`) or will not
 * be (`fail`); a reader reads exactly those bytes, waiting for more as needed,
 * never past what was announced. Reading the file rather than receiving the
 * bytes over a pipe means a slow reader never holds up the download, a fast
 * download is never buffered in memory, and a resumed download's earlier
 * bytes are read like the rest.
 */
import { open } from 'node:fs/promises';
import { NookError } from '../lib/errors.js';

/** What a `GrowingFile` announces, as it travels between processes (extract-main's stdin). */
export type GrowthEvent = { available: number } | { complete: number } | { failed: string };

export class GrowingFile {
  /** bytes from the start of the file that are written */
  available = 0;
  complete = false;
  failure: Error | undefined;
  private readonly listeners = new Set<(event: GrowthEvent) => void>();

  /** A file that is complete already (a blob in the store). */
  static complete(size: number): GrowingFile {
    const file = new GrowingFile();
    file.finish(size);
    return file;
  }

  advance(bytes: number): void {
    if (this.complete || this.failure || bytes <= this.available) return;
    this.available = bytes;
    this.emit({ available: bytes });
  }

  finish(size: number): void {
    if (this.complete || this.failure) return;
    this.available = size;
    this.complete = true;
    this.emit({ complete: size });
  }

  fail(error: Error): void {
    if (this.complete || this.failure) return;
    this.failure = error;
    this.emit({ failed: error.message });
  }

  /** Applies an event received from the writer's side. */
  apply(event: GrowthEvent): void {
    if ('available' in event) this.advance(event.available);
    else if ('complete' in event) this.finish(event.complete);
    else this.fail(new NookError(event.failed));
  }

  /** Calls `listener` with the current state, then with every change; returns the unsubscribe. */
  follow(listener: (event: GrowthEvent) => void): () => void {
    if (this.failure) listener({ failed: this.failure.message });
    else if (this.complete) listener({ complete: this.available });
    else if (this.available > 0) listener({ available: this.available });
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: GrowthEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => {
      const listener = () => {
        this.listeners.delete(listener);
        resolve();
      };
      this.listeners.add(listener);
    });
  }

  /** Waits until at least `bytes` are available or the file is complete (or failed: throws). */
  async waitFor(bytes: number): Promise<void> {
    while (!this.failure && !this.complete && this.available < bytes) await this.changed();
    if (this.failure) throw this.failure;
  }

  /**
   * The file's bytes from the start, in chunks of up to `chunkSize`, as they
   * become available; ends when the file is complete and read, throws the
   * writer's failure.
   */
  async *read(path: string, chunkSize = 1024 * 1024): AsyncGenerator<Buffer> {
    await this.waitFor(1);
    const handle = await open(path, 'r');
    try {
      let position = 0;
      for (;;) {
        await this.waitFor(position + 1);
        if (position >= this.available) {
          if (this.complete) return;
          continue;
        }
        const length = Math.min(chunkSize, this.available - position);
        const buffer = Buffer.allocUnsafeSlow(length);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead === 0) throw new NookError(`${path} is shorter (${position} bytes) than its writer said (${this.available})`);
        position += bytesRead;
        yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }
}
