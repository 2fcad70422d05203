/**
 * Every file `npm run docs:generate` writes, with how it is rendered: the one
 * list the script and the staleness test (test/unit/docs.test.ts) share.
 */
import { renderEnvExample } from '../../../src/config/env-example.js';
import { renderConfigurationDoc } from './configuration.js';
import { replaceRegion } from './markdown.js';
import { protocolRegions } from './protocol.js';

export interface GeneratedFile {
  /** Relative to the project's root. */
  path: string;
  /** The file's content, given what is there now (hand-written documents keep all but their generated regions). */
  render(current: string, root: string): string;
}

export const GENERATED_FILES: readonly GeneratedFile[] = [
  { path: '.env.example', render: () => renderEnvExample() },
  { path: 'docs/configuration.md', render: () => renderConfigurationDoc() },
  {
    path: 'docs/protocol.md',
    render: (current, root) => Object.entries(protocolRegions({ root })).reduce((doc, [name, body]) => replaceRegion(doc, name, body), current),
  },
];
