/**
 * Hand-made tar archives for the image tests: every header field is under the
 * test's control, so hostile layers (../x, absolute paths, symlink tricks,
 * lying sizes) can be built exactly.
 */
import { createHash } from 'node:crypto';

export interface RawEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | string;
  data?: string | Buffer;
  /** override the size field (a lie, for truncation tests) */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  mtime?: number;
  /** extra pax records (SCHILY.xattr.security.capability, ...) */
  pax?: Record<string, string | Buffer>;
  /** corrupt the checksum */
  badChecksum?: boolean;
}

const typeFlag: Record<string, string> = { file: '0', dir: '5', symlink: '2', hardlink: '1', char: '3', block: '4', fifo: '6' };

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

function header(fields: { name: string; flag: string; size: number; mode: number; uid: number; gid: number; mtime: number; linkpath: string; devmajor: number; devminor: number }, badChecksum = false): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name, 0, 100, 'utf8');
  block.write(octal(fields.mode, 8), 100, 'latin1');
  block.write(octal(fields.uid, 8), 108, 'latin1');
  block.write(octal(fields.gid, 8), 116, 'latin1');
  block.write(octal(fields.size, 12), 124, 'latin1');
  block.write(octal(fields.mtime, 12), 136, 'latin1');
  block.write('        ', 148, 'latin1');
  block.write(fields.flag, 156, 'latin1');
  block.write(fields.linkpath, 157, 100, 'utf8');
  block.write('ustar\0', 257, 'latin1');
  block.write('00', 263, 'latin1');
  block.write(octal(fields.devmajor, 8), 329, 'latin1');
  block.write(octal(fields.devminor, 8), 337, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${(badChecksum ? sum + 1 : sum).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

function pad(buffer: Buffer): Buffer {
  const extra = (512 - (buffer.length % 512)) % 512;
  return extra ? Buffer.concat([buffer, Buffer.alloc(extra)]) : buffer;
}

export function tarEntry(entry: RawEntry): Buffer {
  const type = entry.type ?? 'file';
  const flag = typeFlag[type] ?? type;
  const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data);
  const parts: Buffer[] = [];
  const pax: Buffer[] = [];
  let name = entry.path;
  let linkpath = entry.linkpath ?? '';
  if (Buffer.byteLength(name) > 99) {
    pax.push(paxRecord('path', Buffer.from(name)));
    name = name.slice(0, 99);
    while (Buffer.byteLength(name) > 99) name = name.slice(0, -1);
  }
  if (Buffer.byteLength(linkpath) > 99) {
    pax.push(paxRecord('linkpath', Buffer.from(linkpath)));
    linkpath = linkpath.slice(0, 99);
  }
  for (const [key, value] of Object.entries(entry.pax ?? {})) pax.push(paxRecord(key, Buffer.isBuffer(value) ? value : Buffer.from(value)));
  const common = { mode: entry.mode ?? (type === 'dir' ? 0o755 : 0o644), uid: entry.uid ?? 0, gid: entry.gid ?? 0, mtime: entry.mtime ?? 1700000000, devmajor: entry.devmajor ?? 0, devminor: entry.devminor ?? 0 };
  if (pax.length > 0) {
    const paxData = Buffer.concat(pax);
    parts.push(header({ ...common, name: 'PaxHeader', flag: 'x', size: paxData.length, linkpath: '' }), pad(paxData));
  }
  parts.push(header({ ...common, name, flag, size: entry.size ?? data.length, linkpath }, entry.badChecksum));
  if (data.length > 0) parts.push(pad(data));
  return Buffer.concat(parts);
}

/** A whole archive: entries then the two zero blocks. */
export function makeTar(entries: RawEntry[], options: { end?: boolean } = {}): Buffer {
  return Buffer.concat([...entries.map(tarEntry), options.end === false ? Buffer.alloc(0) : Buffer.alloc(1024)]);
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function* chunksOf(buffer: Buffer, size = 700): AsyncGenerator<Buffer> {
  for (let i = 0; i < buffer.length; i += size) yield buffer.subarray(i, i + size);
}
