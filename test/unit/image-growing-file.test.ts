/**
 * Reading a blob while it is written (src/image/growing-file.ts) and
 * decompressing it as it grows (readDecompressed: gzip in a worker thread,
 * uncompressed as it is), as a pull does while a layer downloads.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { readDecompressed } from '../../src/image/compression.js';
import { GrowingFile } from '../../src/image/growing-file.js';

const dir = mkdtempSync(join(tmpdir(), 'nook-growing-'));
let counter = 0;
const freshPath = () => join(dir, `f${counter++}`);

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Writes `data` into `path` in `pieces` steps, announcing each, with a pause in between. */
async function writeSlowly(path: string, file: GrowingFile, data: Buffer, pieces: number): Promise<void> {
  writeFileSync(path, '');
  const step = Math.ceil(data.length / pieces);
  for (let at = 0; at < data.length; at += step) {
    appendFileSync(path, data.subarray(at, at + step));
    file.advance(Math.min(data.length, at + step));
    await sleep(5);
  }
  file.finish(data.length);
}

function sample(bytes: number): Buffer {
  // compressible but not trivial: lines with counters
  let text = '';
  for (let i = 0; text.length < bytes; i++) text += `line ${i} ${(i * 7919) % 1000}\n`;
  return Buffer.from(text.slice(0, bytes));
}

test('a reader gets exactly the announced bytes, waiting for more, up to the end', async (t) => {
  const path = freshPath();
  const data = sample(3 * 1024 * 1024 + 17);
  const file = new GrowingFile();
  const reading = collect(file.read(path, 64 * 1024));
  await writeSlowly(path, file, data, 40);
  t.true((await reading).equals(data));
});

test('a reader never reads past what was announced, even when the file is longer', async (t) => {
  const path = freshPath();
  writeFileSync(path, 'abcdefghij');
  const file = new GrowingFile();
  file.advance(4);
  const iterator = file.read(path);
  t.is(String((await iterator.next()).value), 'abcd');
  const next = iterator.next();
  const winner = await Promise.race([next.then(() => 'read'), sleep(50).then(() => 'waiting')]);
  t.is(winner, 'waiting');
  file.finish(6);
  t.is(String((await next).value), 'ef');
  t.true((await iterator.next()).done);
});

test("the writer's failure ends the reader with that failure", async (t) => {
  const path = freshPath();
  writeFileSync(path, 'abc');
  const file = new GrowingFile();
  file.advance(3);
  const reading = collect(file.read(path));
  await sleep(10);
  file.fail(new Error('connection reset'));
  await t.throwsAsync(reading, { message: 'connection reset' });
});

test('follow() gives the current state first, then each change; changes after the end are ignored', (t) => {
  const file = new GrowingFile();
  file.advance(10);
  const seen: unknown[] = [];
  file.follow((event) => seen.push(event));
  file.advance(5); // not growth
  file.advance(20);
  file.finish(30);
  file.fail(new Error('late'));
  file.advance(40);
  t.deepEqual(seen, [{ available: 10 }, { available: 20 }, { complete: 30 }]);
  t.true(GrowingFile.complete(7).complete);
});

test('readDecompressed inflates a gzip file while it grows, with the digest of the content', async (t) => {
  const path = freshPath();
  const plain = sample(5 * 1024 * 1024);
  const file = new GrowingFile();
  const content = readDecompressed(path, file, 'test layer');
  const reading = collect(content.chunks);
  await writeSlowly(path, file, gzipSync(plain), 25);
  t.true((await reading).equals(plain));
  t.is(content.digest(), `sha256:${createHash('sha256').update(plain).digest('hex')}`);
});

test('readDecompressed of a stalled gzip download hands over what arrived so far', async (t) => {
  const path = freshPath();
  const plain = sample(4 * 1024 * 1024);
  const gz = gzipSync(plain);
  const file = new GrowingFile();
  writeFileSync(path, gz.subarray(0, gz.length >> 1));
  file.advance(gz.length >> 1);
  const content = readDecompressed(path, file, 'test layer');
  const first = await content.chunks.next();
  t.false(first.done);
  t.true((first.value as Buffer).length > 0, 'output before the download went on');
  file.fail(new Error('the download stopped'));
  await t.throwsAsync(collect(content.chunks), { message: 'test layer: the download stopped' });
});

test('readDecompressed of uncompressed content passes it through with its digest', async (t) => {
  const path = freshPath();
  const plain = sample(300_000);
  const file = new GrowingFile();
  const content = readDecompressed(path, file, 'test layer');
  const reading = collect(content.chunks);
  await writeSlowly(path, file, plain, 7);
  t.true((await reading).equals(plain));
  t.is(content.digest(), `sha256:${createHash('sha256').update(plain).digest('hex')}`);
});

test('corrupt gzip data fails with one line naming the layer', async (t) => {
  const path = freshPath();
  const gz = gzipSync(sample(200_000));
  gz[gz.length >> 1] ^= 0xff;
  gz[(gz.length >> 1) + 1] ^= 0xff;
  writeFileSync(path, gz);
  const content = readDecompressed(path, GrowingFile.complete(gz.length), 'layer sha256:0123');
  await t.throwsAsync(collect(content.chunks), { message: /^layer sha256:0123: corrupt gzip data \(/ });
});
