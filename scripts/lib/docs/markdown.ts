/** Small Markdown helpers for the generated documents. */

/** A table cell: one line, pipes escaped. */
export function cell(text: string): string {
  const line = text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|').trim();
  // Outside `code`, <word> would be read as an HTML tag.
  return line
    .split('`')
    .map((part, i) => (i % 2 === 0 ? part.replace(/</g, '&lt;').replace(/>/g, '&gt;') : part))
    .join('`');
}

/** A Markdown table from a header and rows (cells are escaped here). */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  return [`| ${header.map(cell).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`)];
}

/** GitHub's anchor for a heading text. */
export function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');
}

/** The marker pair around a generated region of a hand-written document. */
export function markers(name: string): { start: string; end: string } {
  return {
    start: `<!-- generated:${name}:start (npm run docs:generate writes this part; edit the generator, not the text) -->`,
    end: `<!-- generated:${name}:end -->`,
  };
}

export class GeneratedRegionError extends Error {}

/** `document` with the text between the `name` markers replaced by `body`. */
export function replaceRegion(document: string, name: string, body: string): string {
  const { start, end } = markers(name);
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from < 0 || to < from) throw new GeneratedRegionError(`the document has no region "${name}" (${start} ... ${end})`);
  return `${document.slice(0, from + start.length)}\n${body.trimEnd()}\n${document.slice(to)}`;
}
