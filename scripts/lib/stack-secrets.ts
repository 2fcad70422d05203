/**
 * The secrets `npm run images` wrote to .secrets/ for the stacks (passed to
 * them as Docker secrets), by the variable they stand for: one reader for the
 * scripts that talk to a stack (lab.ts) and the deployment tests.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './docker-cli.js';

export function stackSecrets(): { AUTH_SECRET: string; OPERATOR_SECRET: string; REDIS_PASSWORD: string } {
  const read = (file: string): string => {
    let value: string;
    try {
      value = readFileSync(path.join(ROOT, '.secrets', file), 'utf8');
    } catch {
      throw new Error(`no .secrets/${file}: run \`npm run images\` first (it writes the stacks' secrets)`);
    }
    if (!value) throw new Error(`npm run images wrote an empty .secrets/${file}`);
    return value;
  };
  return { AUTH_SECRET: read('auth_secret'), OPERATOR_SECRET: read('operator_secret'), REDIS_PASSWORD: read('redis_password') };
}
