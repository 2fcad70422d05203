/** npm run env:example: writes .env.example from the config schema (src/config/schema.ts). */
import { writeFileSync } from 'node:fs';
import { renderEnvExample } from '../src/config/env-example.js';

writeFileSync('.env.example', renderEnvExample());
process.stderr.write('wrote .env.example\n');
