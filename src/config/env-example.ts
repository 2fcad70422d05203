import { SECRET_VARIABLES } from './config.js';
import { variablesOf } from './env-var.js';
import { SECTIONS, schema } from './schema.js';

/** Wraps a comment to lines of at most `width` characters, each starting with "# ". */
function comment(text: string, width = 80): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length + 1 + word.length > width && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  if (line !== '#') lines.push(line);
  return lines;
}

/**
 * .env.example, generated from the schema: every variable with its meaning and
 * its default (commented out when unset by default). `npm run env:example`
 * writes it; a unit test checks the committed file is what this returns.
 */
export function renderEnvExample(): string {
  const out = [
    '# sandpool configuration: every variable sandpool reads, with its default.',
    '# Copy to .env (read by `npm start`) or set them in the environment. A bad',
    '# value stops start-up with one message listing every bad variable.',
    '# Generated from src/config/schema.ts by `npm run env:example`; do not edit.',
    ...comment(`Secrets (${SECRET_VARIABLES.join(', ')}) may instead be given as NAME_FILE: the path of a file holding the value (Docker secrets).`),
  ];
  for (const [section, title] of Object.entries(SECTIONS)) {
    out.push('', ...comment(`--- ${title} ---`, 80));
    for (const { variable } of variablesOf(schema[section as keyof typeof schema])) {
      const doc = variable.defaultDoc ? `${variable.doc} Default: ${variable.defaultDoc}.` : variable.doc;
      out.push(...comment(doc));
      out.push(variable.example === undefined ? `# ${variable.name}=` : `${variable.name}=${variable.example}`);
    }
  }
  return `${out.join('\n')}\n`;
}
