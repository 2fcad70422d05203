/**
 * Reads the wire types out of src/protocol's source text, for docs/protocol.md:
 * the event maps (each event's name, payload type and ack type) and the
 * declarations of the payload types, verbatim with their comments. The
 * types exist only at compile time, so the source is the one place to read
 * them from. Anything this reader does not understand is an error, never a
 * silent gap in the document.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export class ProtocolSourceError extends Error {}

export interface EventSignature {
  name: string;
  /** The payload's type as written (first parameter). */
  payload: string;
  /** The ack's response type, when the event takes an ack. */
  ack: string | undefined;
  /** The member's doc comment, if any. */
  doc: string | undefined;
}

/** One exported declaration: `export interface X ...` or `export type X = ...`, with its doc comment. */
export interface Declaration {
  name: string;
  text: string;
}

/** Splits at commas that are not inside (), <> or {}. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if ('(<{['.includes(ch)) depth++;
    if (')>}]'.includes(ch) && !(ch === '>' && current.endsWith('='))) depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim()) parts.push(current.trim());
  return parts;
}

const docText = (lines: string[]): string | undefined => {
  const text = lines
    .join(' ')
    .replace(/\/\*\*|\*\//g, '')
    .replace(/^\s*\*\s?/gm, '')
    .replace(/\s+\*\s/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text === '' ? undefined : text;
};

/** The body of `export interface <name> { ... }` (the lines between its braces). */
function interfaceBody(source: string, name: string): string[] {
  const lines = source.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`export interface ${name} `));
  if (start < 0) throw new ProtocolSourceError(`no "export interface ${name}" in the protocol source`);
  const end = lines.findIndex((line, i) => i > start && line === '}');
  if (end < 0) throw new ProtocolSourceError(`"export interface ${name}" does not end with a "}" line`);
  return lines.slice(start + 1, end);
}

/** The members of an event map interface, in order. */
export function eventsOf(source: string, mapName: string): EventSignature[] {
  const events: EventSignature[] = [];
  let comment: string[] = [];
  let inComment = false;
  for (const raw of interfaceBody(source, mapName)) {
    const line = raw.trim();
    if (line === '') continue;
    if (inComment || line.startsWith('/**')) {
      comment.push(line);
      inComment = !line.endsWith('*/');
      continue;
    }
    const member = /^'?([\w:-]+)'?: \((.*)\) => void;$/.exec(line);
    if (!member?.[1] || member[2] === undefined) throw new ProtocolSourceError(`${mapName}: cannot read the line ${JSON.stringify(line)}`);
    const [payloadParam, ackParam, ...rest] = splitTopLevel(member[2]);
    if (!payloadParam || rest.length > 0) throw new ProtocolSourceError(`${mapName}.${member[1]}: expected (payload[, ack]), got (${member[2]})`);
    const payload = /^\w+\??: (.+)$/.exec(payloadParam)?.[1];
    if (!payload) throw new ProtocolSourceError(`${mapName}.${member[1]}: cannot read the payload ${JSON.stringify(payloadParam)}`);
    let ack: string | undefined;
    if (ackParam !== undefined) {
      ack = /^\w+\??: \(\w+: (.+)\) => void$/.exec(ackParam)?.[1];
      if (!ack) throw new ProtocolSourceError(`${mapName}.${member[1]}: cannot read the ack ${JSON.stringify(ackParam)}`);
    }
    events.push({ name: member[1], payload, ack, doc: docText(comment) });
    comment = [];
  }
  return events;
}

/** Every exported interface and type alias of a source, with its doc comment, in file order. */
export function declarationsOf(source: string): Declaration[] {
  const lines = source.split('\n');
  const out: Declaration[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const head = /^export (?:interface|type) (\w+)/.exec(line);
    if (!head?.[1]) continue;
    // Its doc comment: the /** ... */ block right above.
    let first = i;
    if ((lines[i - 1] ?? '').trim().endsWith('*/')) {
      first = i - 1;
      while (first > 0 && !(lines[first] ?? '').trim().startsWith('/**')) first--;
    }
    // Its end: a one-line declaration, or the closing "}" / "};" line of a block.
    let last = i;
    if (!/;\s*$/.test(line) || /\{\s*$/.test(line)) {
      last = lines.findIndex((l, j) => j > i && /^\}/.test(l));
      if (last < 0) throw new ProtocolSourceError(`${head[1]}: no closing line`);
    }
    out.push({ name: head[1], text: lines.slice(first, last + 1).join('\n') });
  }
  return out;
}

/** The declarations `roots` refer to, directly or through each other, in file order. */
export function referencedDeclarations(declarations: readonly Declaration[], roots: readonly string[]): Declaration[] {
  const byName = new Map(declarations.map((d) => [d.name, d]));
  const wanted = new Set<string>();
  const visit = (text: string): void => {
    for (const word of text.match(/\b[A-Z]\w*\b/g) ?? []) {
      const declaration = byName.get(word);
      if (!declaration || wanted.has(word)) continue;
      wanted.add(word);
      visit(declaration.text.replace(/\/\*\*[\s\S]*?\*\//g, ''));
    }
  };
  roots.forEach(visit);
  return declarations.filter((d) => wanted.has(d.name));
}

export function readSource(root: string, file: string): string {
  return readFileSync(path.join(root, file), 'utf8');
}
