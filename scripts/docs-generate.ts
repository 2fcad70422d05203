/**
 * npm run docs:generate (and its alias npm run env:example): writes every
 * generated file from its source: .env.example and docs/configuration.md from
 * the config schema, the generated regions of docs/protocol.md from
 * src/protocol. test/unit/docs.test.ts fails when a committed one is stale.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GENERATED_FILES } from './lib/docs/generated-files.js';
import { PROJECT_ROOT } from './lib/results-path.js';

for (const file of GENERATED_FILES) {
  const target = path.join(PROJECT_ROOT, file.path);
  const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
  const next = file.render(current, PROJECT_ROOT);
  if (next === current) {
    process.stderr.write(`${file.path} is current\n`);
    continue;
  }
  writeFileSync(target, next);
  process.stderr.write(`wrote ${file.path}\n`);
}
