/**
 * WWW-Authenticate challenges (RFC 7235) as registries send them:
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
 *   Basic realm="Registry Realm"
 */

export interface Challenge {
  /** lower case: "bearer", "basic" */
  scheme: string;
  /** parameter names in lower case */
  params: Record<string, string>;
}

/** Every challenge in one header value (a header may carry several, comma-separated). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) out.push(...parseOne(value));
  return out;
}

function parseOne(text: string): Challenge[] {
  const challenges: Challenge[] = [];
  let pos = 0;
  const skipSpaces = () => {
    while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) pos++;
  };
  const token = (): string => {
    const match = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(text.slice(pos));
    if (!match) return '';
    pos += match[0].length;
    return match[0];
  };
  while (pos < text.length) {
    skipSpaces();
    while (text[pos] === ',') {
      pos++;
      skipSpaces();
    }
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    // parameters: name=value or name="quoted", separated by commas, until the next scheme
    for (;;) {
      skipSpaces();
      const save = pos;
      const name = token();
      skipSpaces();
      if (!name || text[pos] !== '=') {
        // not a parameter: the start of the next challenge (or token68, ignored)
        pos = save;
        break;
      }
      pos++; // =
      skipSpaces();
      let value = '';
      if (text[pos] === '"') {
        pos++;
        while (pos < text.length && text[pos] !== '"') {
          if (text[pos] === '\\' && pos + 1 < text.length) pos++;
          value += text[pos];
          pos++;
        }
        pos++; // closing quote
      } else {
        // lenient: servers send unquoted URLs, which are not RFC tokens
        const match = /^[^\s,]*/.exec(text.slice(pos))!;
        value = match[0];
        pos += value.length;
      }
      challenge.params[name.toLowerCase()] = value;
      skipSpaces();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      break;
    }
    // a scheme followed by a token68 ("Negotiate abc==") or junk: skip to the next comma
    skipSpaces();
    if (pos < text.length && text[pos] !== ',' && !/^[A-Za-z]/.test(text[pos] ?? '')) {
      while (pos < text.length && text[pos] !== ',') pos++;
    }
  }
  return challenges;
}
