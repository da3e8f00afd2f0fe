/**
 * A strict streaming reader of tar archives (ustar, GNU long names, pax).
 *
 * Why not the `tar` package's Parser here (nook still uses `tar` to write
 * archives): layers come from strangers, and this reader must
 *  - keep pax `SCHILY.xattr.*` records (file capabilities such as ping's
 *    cap_net_raw live there; tar v7 drops them),
 *  - refuse, with one clear message, what tar v7 only warns about and skips
 *    (bad checksums, truncated data, sparse files, oversized metadata), since a
 *    layer silently missing files is worse than a layer refused.
 * It only reads; what may be written to disk is decided by ./unpack.ts.
 */
import { NookError } from '../lib/errors.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarEntry {
  /** the path as recorded (not yet normalised or checked) */
  path: string;
  type: TarEntryType;
  /** permission bits incl. setuid/setgid/sticky (07777) */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** bytes of data that follow (files only; 0 for everything else) */
  size: number;
  /** seconds since the epoch, may be fractional (pax) */
  mtime: number;
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** extended attributes from pax records (SCHILY.xattr.NAME), values as raw bytes */
  xattrs: Map<string, Buffer>;
}

export interface TarReaderOptions {
  /** what the archive is, for messages ("layer sha256:abc...") */
  what?: string;
  /** largest pax header or GNU long name accepted (default 1 MiB) */
  maxMetaSize?: number;
}

const BLOCK = 512;
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  /** total bytes consumed, for messages */
  offset = 0;
  private readonly iterator: AsyncIterator<Buffer | string>;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(wanted: number): Promise<void> {
    while (this.buffered < wanted && !this.done) {
      const next = await this.iterator.next();
      if (next.done) {
        this.done = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.copyOut(Math.min(n, this.buffered));
  }

  /**
   * Exactly n bytes when they are buffered already, else undefined: most
   * headers and files of a layer are, and reading them without an await per
   * block is a good part of the extractor's time.
   */
  readBuffered(n: number): Buffer | undefined {
    return this.buffered >= n ? this.copyOut(n) : undefined;
  }

  /** The next n bytes as slices of the buffered chunks (no copy) when they are all buffered, else undefined. */
  takeBuffered(n: number): Buffer[] | undefined {
    if (this.buffered < n) return undefined;
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.chunks[0]!;
      if (head.length <= left) {
        out.push(head);
        this.chunks.shift();
        left -= head.length;
      } else {
        out.push(head.subarray(0, left));
        this.chunks[0] = head.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    this.offset += n;
    return out;
  }

  private copyOut(take: number): Buffer {
    const out = Buffer.allocUnsafe(take);
    let copied = 0;
    while (copied < take) {
      const head = this.chunks[0]!;
      const part = Math.min(head.length, take - copied);
      head.copy(out, copied, 0, part);
      copied += part;
      if (part === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(part);
    }
    this.buffered -= take;
    this.offset += take;
    return out;
  }

  /** Up to `max` bytes that are already available (or the next chunk); empty only at the end. */
  async readSome(max: number): Promise<Buffer> {
    if (this.buffered === 0) await this.fill(1);
    if (this.buffered === 0) return Buffer.alloc(0);
    const head = this.chunks[0]!;
    const part = Math.min(head.length, max);
    if (part === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(part);
    this.buffered -= part;
    this.offset += part;
    return part === head.length ? head : head.subarray(0, part);
  }

  /** Consumes and discards the rest of the stream (its bytes still count for digests upstream). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (!this.done) {
      const next = await this.iterator.next();
      if (next.done) this.done = true;
    }
  }
}

function cString(block: Buffer, start: number, length: number): Buffer {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return nul >= 0 ? field.subarray(0, nul) : field;
}

function parseNumber(block: Buffer, start: number, length: number, field: string, where: () => string): number {
  const bytes = block.subarray(start, start + length);
  if (bytes[0]! & 0x80) {
    // base-256 (GNU): big-endian, first byte 0x80 for positive numbers
    if (bytes[0] === 0xff) throw new NookError(`${where()}: negative ${field} in tar header`);
    let value = BigInt(bytes[0]! & 0x7f);
    for (let i = 1; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new NookError(`${where()}: absurd ${field} ${value} in tar header`);
    return Number(value);
  }
  // Octal digits, optionally surrounded by spaces, ended by NUL or the field's end (most of the
  // header's work: read without building strings; anything else goes to the strict path below).
  let i = 0;
  while (i < length && bytes[i] === 0x20) i++;
  let value = 0;
  for (; i < length; i++) {
    const byte = bytes[i]!;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
  }
  while (i < length && bytes[i] === 0x20) i++;
  if (i === length || bytes[i] === 0) {
    if (!Number.isSafeInteger(value)) throw new NookError(`${where()}: absurd ${field} in tar header`);
    return value;
  }
  const text = bytes.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new NookError(`${where()}: malformed ${field} field ${JSON.stringify(text)} in tar header`);
  const parsed = parseInt(text, 8);
  if (!Number.isSafeInteger(parsed)) throw new NookError(`${where()}: absurd ${field} in tar header`);
  return parsed;
}

function decodeName(bytes: Buffer, where: () => string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new NookError(`${where()}: a file name is not valid UTF-8 (${JSON.stringify(bytes.toString('latin1').slice(0, 100))})`);
  }
}

function checksumValid(block: Buffer): boolean {
  const recorded = parseInt(cString(block, 148, 8).toString('latin1').trim() || 'x', 8);
  if (Number.isNaN(recorded)) return false;
  // the checksum field itself counts as eight spaces
  let unsigned = 8 * 0x20;
  let high = 0;
  for (let i = 0; i < 148; i++) {
    const byte = block[i]!;
    unsigned += byte;
    if (byte > 127) high++;
  }
  for (let i = 156; i < BLOCK; i++) {
    const byte = block[i]!;
    unsigned += byte;
    if (byte > 127) high++;
  }
  // old tars summed signed bytes: each byte over 127 counts 256 less
  return recorded === unsigned || recorded === unsigned - 256 * high;
}

interface PaxRecords {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: number;
  xattrs: Map<string, Buffer>;
}

function parsePax(data: Buffer, where: () => string): PaxRecords {
  const records: PaxRecords = { xattrs: new Map() };
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding
    const space = data.indexOf(0x20, pos);
    if (space < 0) throw new NookError(`${where()}: malformed pax header`);
    const length = Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(length) || length <= space - pos + 1 || pos + length > data.length || data[pos + length - 1] !== 0x0a) {
      throw new NookError(`${where()}: malformed pax header record`);
    }
    const record = data.subarray(space + 1, pos + length - 1);
    pos += length;
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new NookError(`${where()}: malformed pax header record`);
    const key = record.subarray(0, eq).toString('utf8');
    const raw = record.subarray(eq + 1);
    const numeric = (name: string): number => {
      const text = raw.toString('latin1');
      if (!/^\d+(\.\d+)?$/.test(text)) throw new NookError(`${where()}: malformed pax ${name} ${JSON.stringify(text.slice(0, 40))}`);
      const value = Number(text);
      if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) throw new NookError(`${where()}: absurd pax ${name} ${text.slice(0, 40)}`);
      return value;
    };
    if (key === 'path') records.path = decodeName(raw, where);
    else if (key === 'linkpath') records.linkpath = decodeName(raw, where);
    else if (key === 'size') records.size = Math.floor(numeric('size'));
    else if (key === 'uid') records.uid = Math.floor(numeric('uid'));
    else if (key === 'gid') records.gid = Math.floor(numeric('gid'));
    else if (key === 'uname') records.uname = raw.toString('utf8');
    else if (key === 'gname') records.gname = raw.toString('utf8');
    else if (key === 'mtime') records.mtime = numeric('mtime');
    else if (key.startsWith('SCHILY.xattr.')) records.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(raw));
    else if (key.startsWith('LIBARCHIVE.xattr.')) records.xattrs.set(decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(raw.toString('latin1'), 'base64'));
    else if (key.startsWith('GNU.sparse.')) throw new NookError(`${where()}: sparse files in tar archives are not supported`);
    // other keys (atime, ctime, comment, charset, SCHILY.dev...) carry nothing nook keeps
  }
  return records;
}

const typeFlags: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  'D': 'directory',
  '6': 'fifo',
};

const unsupportedTypes: Record<string, string> = {
  S: 'a GNU sparse file',
  M: 'a multi-volume continuation',
  V: 'a volume label',
  N: 'an old GNU long-name record',
};

export interface TarItem {
  entry: TarEntry;
  /** the entry's data; must be consumed (or is skipped) before asking for the next entry */
  body: AsyncIterable<Buffer>;
  /** a file's whole data, when it was all read already (then `body` yields the same buffers) */
  data?: Buffer[];
}

/**
 * Yields the entries of a tar stream in order. Throws NookError for anything
 * malformed: a bad checksum, a field that is not a number, data shorter than
 * the header says, a sparse file. After the end-of-archive blocks, the rest of
 * the input is read and discarded so that a digest computed upstream covers
 * every byte.
 */
export async function* readTar(source: AsyncIterable<Buffer | string>, options: TarReaderOptions = {}): AsyncGenerator<TarItem> {
  const what = options.what ?? 'tar archive';
  const maxMeta = options.maxMetaSize ?? 1024 * 1024;
  const reader = new ByteReader(source);
  let global: PaxRecords = { xattrs: new Map() };
  let pax: PaxRecords | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let entries = 0;
  let sawZeroBlock = false;

  for (;;) {
    const headerOffset = reader.offset;
    const block = reader.readBuffered(BLOCK) ?? (await reader.read(BLOCK));
    const where = () => `${what}: tar header at byte ${headerOffset}`;
    if (block.length === 0) {
      if (entries === 0 && headerOffset === 0) throw new NookError(`${what} is empty (not a tar archive)`);
      if (pax || longName || longLink) throw new NookError(`${what}: truncated tar archive (ends after an extended header)`);
      break; // EOF without end-of-archive blocks: accepted, as GNU tar does
    }
    if (block.length < BLOCK) throw new NookError(`${what}: truncated tar archive (a ${block.length}-byte fragment at byte ${headerOffset})`);
    if (block.every((b) => b === 0)) {
      if (sawZeroBlock) break;
      sawZeroBlock = true;
      continue;
    }
    if (sawZeroBlock) throw new NookError(`${where()}: data after an end-of-archive block`);
    if (!checksumValid(block)) {
      throw new NookError(entries === 0 && headerOffset === 0 ? `${what} is not a tar archive (bad header checksum)` : `${where()}: bad header checksum (corrupt archive)`);
    }
    const flag = String.fromCharCode(block[156]!);
    const size = parseNumber(block, 124, 12, 'size', where);

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > maxMeta) throw new NookError(`${where()}: extended header of ${size} bytes is larger than the ${maxMeta} allowed`);
      const data = await reader.read(size);
      if (data.length < size) throw new NookError(`${what}: truncated tar archive (extended header declares ${size} bytes, only ${data.length} remain)`);
      await reader.read(padding(size));
      if (flag === 'x') pax = parsePax(data, where);
      else if (flag === 'g') {
        const parsed = parsePax(data, where);
        global = { ...global, ...withoutPath(parsed), xattrs: new Map([...global.xattrs, ...parsed.xattrs]) };
      } else {
        const name = decodeName(cString(data, 0, data.length), where);
        if (flag === 'L') longName = name;
        else longLink = name;
      }
      continue;
    }

    const type = typeFlags[flag];
    if (!type) {
      const described = unsupportedTypes[flag] ?? `type ${JSON.stringify(flag)}`;
      throw new NookError(`${where()}: unsupported tar entry (${described})`);
    }

    const magic = block.subarray(257, 263).toString('latin1');
    const isUstar = magic === 'ustar\0';
    let name = decodeName(cString(block, 0, 100), where);
    if (isUstar) {
      const prefix = decodeName(cString(block, 345, 155), where);
      if (prefix) name = `${prefix}/${name}`;
    }
    const local = pax ?? { xattrs: new Map<string, Buffer>() };
    const entry: TarEntry = {
      path: local.path ?? longName ?? name,
      type,
      mode: parseNumber(block, 100, 8, 'mode', where) & 0o7777,
      uid: local.uid ?? global.uid ?? parseNumber(block, 108, 8, 'uid', where),
      gid: local.gid ?? global.gid ?? parseNumber(block, 116, 8, 'gid', where),
      uname: local.uname ?? global.uname ?? cString(block, 265, 32).toString('utf8'),
      gname: local.gname ?? global.gname ?? cString(block, 297, 32).toString('utf8'),
      size: local.size ?? global.size ?? size,
      mtime: local.mtime ?? global.mtime ?? parseNumber(block, 136, 12, 'mtime', where),
      linkpath: local.linkpath ?? longLink ?? decodeName(cString(block, 157, 100), where),
      devmajor: type === 'char' || type === 'block' ? parseNumber(block, 329, 8, 'devmajor', where) : 0,
      devminor: type === 'char' || type === 'block' ? parseNumber(block, 337, 8, 'devminor', where) : 0,
      xattrs: new Map([...global.xattrs, ...local.xattrs]),
    };
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    entries++;
    if (entry.path === '') throw new NookError(`${where()}: entry without a name`);

    // Only regular files carry data nook uses; the bytes of other types (a
    // GNU dump directory listing, a hardlink with data) are skipped.
    const dataSize = entry.size;
    if (entry.type !== 'file') entry.size = 0;
    const data = entry.type === 'file' ? reader.takeBuffered(dataSize) : undefined;
    let remaining = data ? 0 : dataSize;
    const shownPath = entry.path.length > 200 ? `${entry.path.slice(0, 200)}...` : entry.path;
    const body = (async function* () {
      while (remaining > 0) {
        const chunk = await reader.readSome(Math.min(remaining, 1024 * 1024));
        if (chunk.length === 0) {
          throw new NookError(`${what}: truncated tar archive (${JSON.stringify(shownPath)} declares ${dataSize} bytes, only ${dataSize - remaining} present)`);
        }
        remaining -= chunk.length;
        yield chunk;
      }
    })();
    if (data) yield { entry, body: bodyOf(data), data };
    else yield { entry, body: entry.type === 'file' ? body : emptyBody() };
    // Skip whatever the consumer did not read (also when it stopped iterating the body early).
    while (remaining > 0) {
      const chunk = await reader.readSome(Math.min(remaining, 1024 * 1024));
      if (chunk.length === 0) throw new NookError(`${what}: truncated tar archive (${JSON.stringify(shownPath)} declares ${dataSize} bytes, only ${dataSize - remaining} present)`);
      remaining -= chunk.length;
    }
    const pad = padding(dataSize);
    if (pad > 0) {
      const skipped = reader.readBuffered(pad) ?? (await reader.read(pad));
      if (skipped.length < pad) break; // archive ends in the padding: tolerated, data is complete
    }
  }
  await reader.drain();
}

async function* emptyBody(): AsyncGenerator<Buffer> {
  // no data
}

async function* bodyOf(data: Buffer[]): AsyncGenerator<Buffer> {
  yield* data;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function withoutPath(records: PaxRecords): Omit<PaxRecords, 'path' | 'linkpath' | 'size'> {
  const { path: _p, linkpath: _l, size: _s, ...rest } = records;
  return rest;
}
