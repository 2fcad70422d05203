/**
 * A JSON reader for request bodies whose meaning must not depend on who
 * reads them. JSON.parse keeps the last of two equal keys; Go's
 * encoding/json (the Docker engine) matches struct fields ignoring case and
 * also keeps the last match, folds Unicode look-alikes (U+017F "ſ" is "s",
 * U+212A "K" is "k"), and reads `\u0050rivileged` as `Privileged`. So this
 * reader keeps every key of every object as written and refuses the texts
 * whose readers could disagree: a key written twice, two keys equal when
 * case is ignored, a key written with any escape. It refuses everything
 * outside RFC 8259 too (trailing commas, comments, NaN, a byte-order mark...).
 */

/** A JSON value as written: an object keeps its entries in order. */
export type JsonNode =
  | { readonly kind: 'object'; readonly entries: ReadonlyArray<{ readonly key: string; readonly value: JsonNode }> }
  | { readonly kind: 'array'; readonly items: readonly JsonNode[] }
  | { readonly kind: 'string'; readonly value: string }
  /** `integer`: written without a fraction or an exponent. */
  | { readonly kind: 'number'; readonly value: number; readonly integer: boolean }
  | { readonly kind: 'boolean'; readonly value: boolean }
  | { readonly kind: 'null' };

/** A text that is not JSON, or JSON whose keys are ambiguous. `path` says where (`HostConfig.Tmpfs`). */
export class StrictJsonError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(path === '' ? message : `${path}: ${message}`);
    this.name = 'StrictJsonError';
  }
}

export interface StrictJsonOptions {
  /** Deepest nesting of objects and arrays. Default 16. */
  maxDepth?: number;
}

/**
 * Case folding close to Go's (strings.EqualFold uses Unicode simple folding):
 * upper then lower case maps "ſ" and "s", "K" (Kelvin) and "k" together.
 */
export function foldKey(key: string): string {
  return key.toUpperCase().toLowerCase();
}

function joinPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Parses `text` strictly (see the module comment); throws StrictJsonError. */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): JsonNode {
  const maxDepth = options.maxDepth ?? 16;
  let pos = 0;

  const fail = (message: string, path: string): never => {
    throw new StrictJsonError(`${message} (at character ${pos})`, path);
  };

  const skipSpace = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      // Only the four whitespace characters of RFC 8259.
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else break;
    }
  };

  /** A string at `pos` (its opening quote); `escaped` says whether any escape was used. */
  const readString = (path: string): { value: string; escaped: boolean } => {
    pos++;
    let out = '';
    let escaped = false;
    let start = pos;
    for (;;) {
      if (pos >= text.length) fail('unterminated string', path);
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(start, pos);
        pos++;
        return { value: out, escaped };
      }
      if (c < 0x20) fail('control character in a string', path);
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      escaped = true;
      out += text.slice(start, pos);
      const e = text[pos + 1];
      pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const hex = text.slice(pos, pos + 4);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) fail('bad \\u escape', path);
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          fail('bad escape in a string', path);
      }
      start = pos;
    }
  };

  const readNumber = (path: string): JsonNode => {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
    if (!m) return fail('not a JSON value', path);
    pos += m[0].length;
    const value = Number(m[0]);
    if (!Number.isFinite(value)) fail('number out of range', path);
    return { kind: 'number', value, integer: m[1] === undefined && m[2] === undefined };
  };

  const readLiteral = (word: string, node: JsonNode, path: string): JsonNode => {
    if (text.startsWith(word, pos)) {
      pos += word.length;
      return node;
    }
    return fail('not a JSON value', path);
  };

  const readValue = (path: string, depth: number): JsonNode => {
    skipSpace();
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nested deeper than ${maxDepth}`, path);
      return c === '{' ? readObject(path, depth + 1) : readArray(path, depth + 1);
    }
    if (c === '"') return { kind: 'string', value: readString(path).value };
    if (c === 't') return readLiteral('true', { kind: 'boolean', value: true }, path);
    if (c === 'f') return readLiteral('false', { kind: 'boolean', value: false }, path);
    if (c === 'n') return readLiteral('null', { kind: 'null' }, path);
    return readNumber(path);
  };

  const readObject = (path: string, depth: number): JsonNode => {
    pos++;
    const entries: Array<{ key: string; value: JsonNode }> = [];
    const folded = new Map<string, string>();
    skipSpace();
    if (text[pos] === '}') {
      pos++;
      return { kind: 'object', entries };
    }
    for (;;) {
      skipSpace();
      if (text[pos] !== '"') fail('expected a key in double quotes', path);
      const { value: key, escaped } = readString(path);
      const keyPath = joinPath(path, key);
      if (escaped) fail(`the key ${JSON.stringify(key)} is written with an escape; write keys as plain text`, keyPath);
      const other = folded.get(foldKey(key));
      if (other === key) fail(`the key ${JSON.stringify(key)} is written twice`, keyPath);
      if (other !== undefined) fail(`the keys ${JSON.stringify(other)} and ${JSON.stringify(key)} differ only in case`, keyPath);
      folded.set(foldKey(key), key);
      skipSpace();
      if (text[pos] !== ':') fail('expected ":" after a key', keyPath);
      pos++;
      entries.push({ key, value: readValue(keyPath, depth) });
      skipSpace();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === '}') {
        pos++;
        return { kind: 'object', entries };
      }
      fail('expected "," or "}" in an object', path);
    }
  };

  const readArray = (path: string, depth: number): JsonNode => {
    pos++;
    const items: JsonNode[] = [];
    skipSpace();
    if (text[pos] === ']') {
      pos++;
      return { kind: 'array', items };
    }
    for (;;) {
      items.push(readValue(joinPath(path, items.length), depth));
      skipSpace();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === ']') {
        pos++;
        return { kind: 'array', items };
      }
      fail('expected "," or "]" in an array', path);
    }
  };

  const root = readValue('', 0);
  skipSpace();
  if (pos !== text.length) fail('unexpected text after the JSON value', '');
  return root;
}
