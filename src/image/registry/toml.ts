/**
 * The subset of TOML that containers' registries.conf files use: comments,
 * `key = value` with strings (basic and literal), booleans, integers and
 * arrays (over several lines too), `[table]`, `[[array.of.tables]]` (where
 * `[[registry.mirror]]` belongs to the last `[[registry]]`), and simple inline
 * tables. Anything else is reported with its line rather than guessed at: a
 * TOML library would be a dependency for one small file.
 */

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {
  constructor(message: string, readonly line: number) {
    super(`line ${line}: ${message}`);
    this.name = 'TomlError';
  }
}

export function parseToml(text: string): TomlTable {
  return new Parser(text).parseDocument();
}

class Parser {
  private pos = 0;
  private line = 1;

  constructor(private readonly text: string) {}

  parseDocument(): TomlTable {
    const root: TomlTable = {};
    let current = root;
    for (;;) {
      this.skipBlank(true);
      if (this.pos >= this.text.length) return root;
      const ch = this.text[this.pos];
      if (ch === '[') {
        const arrayOfTables = this.text[this.pos + 1] === '[';
        this.pos += arrayOfTables ? 2 : 1;
        this.skipBlank(false);
        const path = this.parseKeyPath();
        this.skipBlank(false);
        this.expect(arrayOfTables ? ']]' : ']');
        this.endOfLine();
        current = arrayOfTables ? this.appendTable(root, path) : this.openTable(root, path);
        continue;
      }
      const startLine = this.line;
      const path = this.parseKeyPath();
      this.skipBlank(false);
      this.expect('=');
      this.skipBlank(false);
      const value = this.parseValue();
      this.endOfLine();
      const last = path[path.length - 1]!;
      const table = this.descend(current, path.slice(0, -1));
      if (last in table) throw new TomlError(`duplicate key "${path.join('.')}"`, startLine);
      table[last] = value;
    }
  }

  /** `[a.b]`: walks into (creating) tables; an array of tables continues with its last element. */
  private openTable(root: TomlTable, path: string[]): TomlTable {
    return this.descend(root, path);
  }

  private appendTable(root: TomlTable, path: string[]): TomlTable {
    const parent = this.descend(root, path.slice(0, -1));
    const last = path[path.length - 1]!;
    const existing = parent[last];
    const table: TomlTable = {};
    if (existing === undefined) parent[last] = [table];
    else if (Array.isArray(existing)) existing.push(table);
    else throw this.error(`"${path.join('.')}" is not an array of tables`);
    return table;
  }

  private descend(start: TomlTable, path: string[]): TomlTable {
    let table = start;
    for (const key of path) {
      let next = table[key];
      if (next === undefined) {
        next = {};
        table[key] = next;
      }
      if (Array.isArray(next)) {
        const last = next[next.length - 1];
        if (last === undefined || typeof last !== 'object' || Array.isArray(last)) throw this.error(`"${key}" is not a table`);
        next = last;
      }
      if (typeof next !== 'object') throw this.error(`"${key}" is not a table`);
      table = next;
    }
    return table;
  }

  private parseKeyPath(): string[] {
    const keys = [this.parseKey()];
    for (;;) {
      this.skipBlank(false);
      if (this.text[this.pos] !== '.') return keys;
      this.pos++;
      this.skipBlank(false);
      keys.push(this.parseKey());
    }
  }

  private parseKey(): string {
    const ch = this.text[this.pos];
    if (ch === '"') return this.parseBasicString();
    if (ch === "'") return this.parseLiteralString();
    const match = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.pos, this.pos + 256));
    if (!match) throw this.error('expected a key');
    this.pos += match[0].length;
    return match[0];
  }

  private parseValue(): TomlValue {
    const ch = this.text[this.pos];
    if (ch === '"') {
      if (this.text.startsWith('"""', this.pos)) throw this.error('multi-line strings are not supported');
      return this.parseBasicString();
    }
    if (ch === "'") {
      if (this.text.startsWith("'''", this.pos)) throw this.error('multi-line strings are not supported');
      return this.parseLiteralString();
    }
    if (ch === '[') return this.parseArray();
    if (ch === '{') return this.parseInlineTable();
    const rest = this.text.slice(this.pos, this.pos + 64);
    const word = /^(true|false)(?![A-Za-z0-9_-])/.exec(rest);
    if (word) {
      this.pos += word[0].length;
      return word[1] === 'true';
    }
    const number = /^[+-]?\d[\d_]*(?![A-Za-z0-9.:-])/.exec(rest);
    if (number) {
      this.pos += number[0].length;
      return Number(number[0].replaceAll('_', ''));
    }
    throw this.error('expected a string, boolean, integer, array or inline table');
  }

  private parseArray(): TomlValue[] {
    this.pos++; // [
    const items: TomlValue[] = [];
    for (;;) {
      this.skipBlank(true);
      if (this.text[this.pos] === ']') {
        this.pos++;
        return items;
      }
      items.push(this.parseValue());
      this.skipBlank(true);
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      if (this.text[this.pos] === ']') {
        this.pos++;
        return items;
      }
      throw this.error('expected "," or "]" in array');
    }
  }

  private parseInlineTable(): TomlTable {
    this.pos++; // {
    const table: TomlTable = {};
    this.skipBlank(false);
    if (this.text[this.pos] === '}') {
      this.pos++;
      return table;
    }
    for (;;) {
      this.skipBlank(false);
      const path = this.parseKeyPath();
      this.skipBlank(false);
      this.expect('=');
      this.skipBlank(false);
      const value = this.parseValue();
      const target = this.descend(table, path.slice(0, -1));
      target[path[path.length - 1]!] = value;
      this.skipBlank(false);
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect('}');
      return table;
    }
  }

  private parseBasicString(): string {
    this.pos++; // "
    let out = '';
    for (;;) {
      const ch = this.text[this.pos];
      if (ch === undefined || ch === '\n') throw this.error('unterminated string');
      this.pos++;
      if (ch === '"') return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.text[this.pos++];
      switch (esc) {
        case 'b': out += '\b'; break;
        case 't': out += '\t'; break;
        case 'n': out += '\n'; break;
        case 'f': out += '\f'; break;
        case 'r': out += '\r'; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'u':
        case 'U': {
          const len = esc === 'u' ? 4 : 8;
          const hex = this.text.slice(this.pos, this.pos + len);
          if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== len) throw this.error('bad unicode escape');
          out += String.fromCodePoint(parseInt(hex, 16));
          this.pos += len;
          break;
        }
        default:
          throw this.error(`bad escape "\\${esc ?? ''}"`);
      }
    }
  }

  private parseLiteralString(): string {
    const end = this.text.indexOf("'", this.pos + 1);
    const newline = this.text.indexOf('\n', this.pos + 1);
    if (end < 0 || (newline >= 0 && newline < end)) throw this.error('unterminated string');
    const value = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return value;
  }

  /** Spaces and tabs; with `newlines`, also line ends and comments. */
  private skipBlank(newlines: boolean): void {
    for (;;) {
      const ch = this.text[this.pos];
      if (ch === ' ' || ch === '\t' || ch === '\r') this.pos++;
      else if (newlines && ch === '\n') {
        this.pos++;
        this.line++;
      } else if (newlines && ch === '#') {
        while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
      } else return;
    }
  }

  private endOfLine(): void {
    this.skipBlank(false);
    if (this.text[this.pos] === '#') while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
    if (this.pos >= this.text.length) return;
    if (this.text[this.pos] !== '\n') throw this.error('expected the end of the line');
    this.pos++;
    this.line++;
  }

  private expect(token: string): void {
    if (!this.text.startsWith(token, this.pos)) throw this.error(`expected "${token}"`);
    this.pos += token.length;
  }

  private error(message: string): TomlError {
    return new TomlError(message, this.line);
  }
}
